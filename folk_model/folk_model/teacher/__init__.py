"""The FOLK teacher: posed RGB-D views of 3D instances -> vision-language embeddings.

Public API::

    res = run_teacher(scene, encoder, TeacherConfig(), masks=None)   # GT instances, or masks
    save_teacher_result(out_dir, scene.name, res, encoder.info(), cfg)
    clf = TeacherClassifier(encoder, cfg, vocabulary)                 # the 2D baseline
    out = clf.classify(scene, masks)                                  # labels + stage timings

CLI: ``folk-teacher SCENES... --out DIR`` (see ``folk_model.teacher.cli``).
"""

from folk_model.teacher.baseline import BaselineOutput, TeacherClassifier
from folk_model.teacher.teacher import (
    STAGES,
    TeacherResult,
    ViewDetail,
    gt_masks,
    load_teacher_result,
    run_teacher,
    save_teacher_result,
)
from folk_model.teacher.views import rotation_angle_deg, select_views
from folk_model.teacher.visibility import project, visible_points

__all__ = [
    "STAGES",
    "BaselineOutput",
    "TeacherClassifier",
    "TeacherResult",
    "ViewDetail",
    "gt_masks",
    "load_teacher_result",
    "project",
    "rotation_angle_deg",
    "run_teacher",
    "save_teacher_result",
    "select_views",
    "visible_points",
]
