"""Evaluate the student and the teacher pipeline on the same proposals and scenes.

For each scene the student segments the cloud once; its proposals are then labelled twice:

- student: each proposal's student embedding against the vocabulary's text embeddings;
- teacher pipeline: the same proposal masks projected into the posed RGB frames, crops
  encoded by the 2D VL encoder (``TeacherClassifier``), labelled against the same texts.

A prediction's confidence is its proposal score times its label probability (the student's
at the weights' calibrated temperature, ``cfg.label_temperature``; the teacher pipeline keeps
its own fixed one). Seconds per
scene: student = segmentation + labelling; teacher pipeline = the same segmentation (it needs
the proposals) + the 2D teacher.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from folk_model.eval.ap import InstanceAPEvaluator, Prediction
from folk_model.eval.meshes import object_meshes
from folk_model.eval.recognition import RecognitionEvaluator, paired_recognition
from folk_model.labelling import label_embeddings
from folk_model.teacher.teacher import gt_masks as teacher_gt_masks

logger = logging.getLogger(__name__)


@dataclass
class EvalRun:
    """Results and timings of one evaluation (both methods, same scenes)."""

    student: dict[str, Any]
    teacher: dict[str, Any] | None
    seconds: dict[str, list[float]] = field(default_factory=dict)
    scenes: list[str] = field(default_factory=list)
    num_proposals: list[int] = field(default_factory=list)
    recognition: dict[str, Any] | None = None  # method -> RecognitionEvaluator.evaluate()
    bootstrap: dict[str, Any] | None = None  # paired_bootstrap() of AP50 (None: not run)
    # paired_recognition(student, teacher) of GT-mask top-1 (None: not run)
    recognition_bootstrap: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary with mean seconds per scene."""
        mean = {k: float(np.mean(v)) if v else float("nan") for k, v in self.seconds.items()}
        out: dict[str, Any] = {"scenes": self.scenes, "seconds_per_scene": mean,
                               "seconds": self.seconds, "num_proposals": self.num_proposals,
                               "student": self.student, "teacher": self.teacher,
                               "recognition": self.recognition, "bootstrap": self.bootstrap,
                               "recognition_bootstrap": self.recognition_bootstrap}
        if self.teacher is not None and mean.get("student_total", 0) > 0:
            out["speedup_teacher_over_student"] = mean["teacher_total"] / mean["student_total"]
        return out


@dataclass
class SceneOutputs:
    """What both methods said about one scene (handed to ``evaluate_scenes``' ``on_scene``).

    Attributes:
        masks: the student's proposals, int64 point-index arrays into the scene's points.
        student_labels / student_conf: each proposal's student label and confidence.
        teacher_labels / teacher_conf: the same from the teacher pipeline (None without it).
    """

    masks: list[np.ndarray]
    student_labels: list[str]
    student_conf: np.ndarray
    teacher_labels: list[str] | None = None
    teacher_conf: np.ndarray | None = None


def _predictions(masks: Sequence[np.ndarray], labels: Sequence[str],
                 conf: np.ndarray) -> list[Prediction]:
    return [Prediction(m, lab, float(c)) for m, lab, c in zip(masks, labels, conf) if lab]


def evaluate_scenes(
    segmenter: Any,
    scenes: Sequence[Any],
    vocabulary: Sequence[str],
    text_embeddings: np.ndarray,
    novel: Sequence[str],
    teacher_classifier: Any | None = None,
    min_region_size: int = 100,
    warmup: bool = True,
    repeats: int = 1,
    gt_masks: bool = False,
    progress: bool = False,
    on_scene: Callable[[Any, SceneOutputs], None] | None = None,
    bootstrap: int = 0,
    class_groups: dict[str, Sequence[str]] | None = None,
) -> EvalRun:
    """Run both methods over ``scenes`` (``Scene`` objects) and compute AP.

    Args:
        segmenter: a ``StudentSegmenter``.
        vocabulary: evaluated class names; text_embeddings float32 [C, D] of them.
        novel: classes held out from training (reported separately).
        teacher_classifier: a ``TeacherClassifier`` over the same vocabulary, or None.
        repeats: the student's segmentation is timed as the median of this many runs per
            scene (it is deterministic; the median damps other processes on a shared CPU).
        gt_masks: also measure recognition on the GT masks (``RecognitionEvaluator``): both
            methods embed every evaluated GT instance, which isolates naming from proposals.
        progress: show a progress bar over the scenes.
        on_scene: called with (scene, SceneOutputs) after each scene (pictures, dumps).
        bootstrap: resamples of a paired scene bootstrap of AP50 (0: none): intervals for
            each method and for their difference (``folk_model.eval.bootstrap``).
        class_groups: named class subsets whose mean AP is reported too (ScanNet200's head /
            common / tail), in ``class_aware["groups"]``.
    """
    from tqdm import tqdm

    ev_s = InstanceAPEvaluator(vocabulary, novel, min_region_size, class_groups)
    ev_t = InstanceAPEvaluator(vocabulary, novel, min_region_size, class_groups)
    student_t = float(getattr(segmenter.cfg, "label_temperature", 0.01))
    student_map = (segmenter.score_maps(vocabulary) if hasattr(segmenter, "score_maps")
                   else tuple(getattr(segmenter.cfg, "label_score_map", (1.0, 0.0))))
    student_bias = (segmenter.word_bias(vocabulary) if hasattr(segmenter, "word_bias")
                    else None)
    rec = {"student": RecognitionEvaluator(vocabulary, text_embeddings, novel,
                                           temperature=student_t, score_map=student_map,
                                           word_bias=student_bias),
           "teacher": RecognitionEvaluator(vocabulary, text_embeddings, novel)}
    run = EvalRun({}, None)
    keys = ["student_segment", "student_label", "student_total", "teacher_2d", "teacher_total"]
    run.seconds = {k: [] for k in keys}
    if warmup and scenes:
        segmenter.segment(scenes[0].points, scenes[0].colors)
    for sc in tqdm(scenes, desc="folk-eval", unit="scene", disable=not progress):
        gt_labels = sc.instance_labels()
        seg_times = []
        for _ in range(max(1, repeats)):
            ts = time.perf_counter()
            res = segmenter.segment(sc.points, sc.colors)
            seg_times.append(time.perf_counter() - ts)
        t1 = time.perf_counter()
        t0 = t1 - float(np.median(seg_times))
        masks = [i.point_indices for i in res.instances]
        prop_score = np.array([i.score for i in res.instances], np.float32)
        lab = label_embeddings(res.embeddings(segmenter.embed_dim), text_embeddings,
                               temperature=student_t, score_map=student_map,
                               word_bias=student_bias)
        s_labels = [vocabulary[int(i)] for i in lab.label_index]
        t2 = time.perf_counter()
        outputs = SceneOutputs(masks, s_labels, prop_score * lab.score)
        ev_s.process(sc.instance_ids, gt_labels, _predictions(masks, s_labels,
                                                              outputs.student_conf))
        run.seconds["student_segment"].append(t1 - t0)
        run.seconds["student_label"].append(t2 - t1)
        run.seconds["student_total"].append(t2 - t0)
        run.scenes.append(sc.name)
        run.num_proposals.append(len(masks))
        if teacher_classifier is not None:
            t3 = time.perf_counter()
            out = teacher_classifier.classify(sc, masks) if masks else None
            t4 = time.perf_counter()
            if out is not None:
                outputs.teacher_labels = list(out.labels)
                outputs.teacher_conf = prop_score * out.scores
                ev_t.process(sc.instance_ids, gt_labels,
                             _predictions(masks, out.labels, outputs.teacher_conf))
            else:
                ev_t.process(sc.instance_ids, gt_labels, [])
            run.seconds["teacher_2d"].append(t4 - t3)
            run.seconds["teacher_total"].append(t1 - t0 + t4 - t3)
        if on_scene is not None:
            on_scene(sc, outputs)
        if gt_masks:
            gm, gids, glab = teacher_gt_masks(sc)
            big = [i for i, m in enumerate(gm) if len(m) >= min_region_size
                   and glab[i] in vocabulary]
            uid_of = object_meshes(sc)
            gmesh = [uid_of.get(int(gids[i])) for i in big]
            gm, glab = [gm[i] for i in big], [str(glab[i]) for i in big]
            rec["student"].process(glab, segmenter.embed_masks(sc.points, sc.colors, gm),
                                   sc.name, gmesh)
            if teacher_classifier is not None and gm:
                rec["teacher"].process(glab, teacher_classifier.classify(sc, gm).embeddings,
                                       sc.name, gmesh)
        logger.info("%s: %d proposals, student %.2f s%s", sc.name, len(masks), t2 - t0,
                    f", teacher 2D {run.seconds['teacher_2d'][-1]:.2f} s"
                    if teacher_classifier is not None else "")
    run.student = ev_s.evaluate()
    run.teacher = ev_t.evaluate() if teacher_classifier is not None else None
    if bootstrap > 0 and run.scenes:
        from folk_model.eval.bootstrap import paired_bootstrap

        evs = {"student": ev_s}
        if teacher_classifier is not None:
            evs["teacher"] = ev_t
        run.bootstrap = paired_bootstrap(evs, samples=bootstrap)
    if gt_masks:
        run.recognition = {"student": rec["student"].evaluate()}
        if teacher_classifier is not None:
            run.recognition["teacher"] = rec["teacher"].evaluate()
            if bootstrap > 0:
                run.recognition_bootstrap = paired_recognition(rec["student"], rec["teacher"],
                                                               bootstrap)
    return run


def _fmt(x: float) -> str:
    return "n/a" if x is None or np.isnan(x) else f"{100 * x:.1f}"


def markdown_report(summary: dict[str, Any], title: str = "Student vs teacher pipeline") -> str:
    """The summary as a markdown page: overall, base/novel, class-agnostic, per class."""
    lines = [f"# {title}", "", f"Scenes: {len(summary['scenes'])} ({', '.join(summary['scenes'])})",
             ""]
    fp = summary.get("data_fingerprint")
    if fp:
        lines += [f"Data fingerprint: `{fp['all']}` (SHA-1 of the evaluated clouds and their "
                  "ground truth; `eval.json` lists each room's). Rooms regenerated on another "
                  "machine may differ bit for bit, and then read other figures.", ""]
    sec = summary["seconds_per_scene"]
    methods = [("student", summary["student"])]
    if summary.get("teacher"):
        methods.append(("teacher pipeline", summary["teacher"]))
    lines += ["| method | split | AP | AP50 | AP25 | classes |", "|---|---|---|---|---|---|"]
    for name, r in methods:
        ca = r["class_aware"]
        for split, d in (("all", ca), ("base", ca["base"]), ("novel", ca["novel"]),
                         *ca.get("groups", {}).items()):
            lines.append(f"| {name} | {split} | {_fmt(d['AP'])} | {_fmt(d['AP50'])} | "
                         f"{_fmt(d['AP25'])} | {d['num_classes']} |")
        ag = r["class_agnostic"]
        lines.append(f"| {name} | class-agnostic | {_fmt(ag['AP'])} | {_fmt(ag['AP50'])} | "
                     f"{_fmt(ag['AP25'])} | - |")
    lines += ["", "| seconds per scene | value |", "|---|---|"]
    for k, v in sec.items():
        lines.append(f"| {k} | {v:.3f} |")
    if "speedup_teacher_over_student" in summary:
        lines.append(f"| teacher / student | {summary['speedup_teacher_over_student']:.1f}x |")
    boot = summary.get("bootstrap")
    if boot:
        pct = round(100 * boot["confidence"])
        lines += ["", f"AP50 with {pct}% intervals of a paired scene bootstrap "
                  f"({boot['samples']} resamples of the {boot['scenes']} scenes; the same "
                  "resamples for both methods):", "",
                  "| AP50 | split | estimate | interval | P(student >= teacher) |",
                  "|---|---|---|---|---|"]
        for name, r in boot["methods"].items():
            for split, d in r.items():
                lines.append(f"| {name} | {split} | {_fmt(d['estimate'])} | "
                             f"{_fmt(d['low'])} .. {_fmt(d['high'])} | |")
        for name, r in boot["differences"].items():
            for split, d in r.items():
                lines.append(f"| {name} | {split} | {100 * d['estimate']:+.1f} | "
                             f"{100 * d['low']:+.1f} .. {100 * d['high']:+.1f} | "
                             f"{d['p_a_ge_b']:.2f} |")
    rec = summary.get("recognition")
    if rec:
        lines += ["", "Recognition on ground-truth masks (top-1 / top-5 %, mean per-class "
                  "top-1 %, instances):", "",
                  "| method | split | top-1 | top-5 | class mean top-1 | instances |",
                  "|---|---|---|---|---|---|"]
        for name, r in rec.items():
            for split in ("all", "base", "novel"):
                d = r[split]
                lines.append(f"| {name} | {split} | {_fmt(d['top1'])} | {_fmt(d['topk'])} | "
                             f"{_fmt(d['mean_class_top1'])} | {d['instances']} |")
        rb = summary.get("recognition_bootstrap")
        if rb:
            lines += ["", "GT-mask top-1, student - teacher, with 95% intervals of a paired "
                      "bootstrap: over the rooms, over the objects' meshes (a mesh recurs "
                      "across rooms and is named right or wrong mostly as a whole), and with "
                      "each mesh counted once (the mean of the meshes' rates):", "",
                      "| split | resampled | units | student | teacher | difference [95%] "
                      "| P(student >= teacher) |", "|---|---|---|---|---|---|---|"]
            for split, ways in rb.items():
                for way, d in ways.items():
                    lines.append(f"| {split} | {way} | {d['units']} | {d['new']:.1f} | "
                                 f"{d['baseline']:.1f} | {d['difference']:+.1f} "
                                 f"[{d['low']:+.1f}, {d['high']:+.1f}] | "
                                 f"{d['p_new_ge_baseline']:.2f} |")
        cal = {n: r["calibration"] for n, r in rec.items() if r.get("calibration")}
        if cal:
            lines += ["", "Calibration of the top-1 label scores on ground-truth masks (expected "
                      "calibration error over 15 bins, %; a score of 0.9 should be right 9 "
                      "times in 10; reliability diagram: reliability_student.png):", "",
                      "| method | temperature | ECE | mean score | top-1 | NLL |",
                      "|---|---|---|---|---|---|"]
            for name, c in cal.items():
                lines.append(f"| {name} | {c['temperature']:.4g} | {_fmt(c['ece'])} | "
                             f"{_fmt(c['mean_confidence'])} | "
                             f"{_fmt(c['reliability']['accuracy_all'])} | {c['nll']:.3f} |")
        lines += ["", "Per class on ground-truth masks (top-1 %, instances, most frequent wrong "
                  "name and its count):", "",
                  "| class | " + " | ".join(rec) + " |", "|---|" + "---|" * len(rec)]
        for c in next(iter(rec.values()))["per_class"]:
            cells = []
            for r in rec.values():
                d = r["per_class"].get(c)
                if d is None:
                    cells.append("n/a")
                    continue
                wrong = f", -> {d['confused_with']} ({d['confused_count']})" \
                    if d.get("confused_with") else ""
                cells.append(f"{_fmt(d['top1'])} of {d['instances']}{wrong}")
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += ["", "Per class AP50 (student / teacher):", "", "| class | student | teacher |",
              "|---|---|---|"]
    ps = summary["student"]["class_aware"]["per_class"]
    pt = summary["teacher"]["class_aware"]["per_class"] if summary.get("teacher") else {}
    for c, d in ps.items():
        t = pt.get(c, {}).get("AP50", float("nan"))
        if np.isnan(d["AP50"]) and np.isnan(t):
            continue  # class absent from these scenes
        lines.append(f"| {c} | {_fmt(d['AP50'])} | {_fmt(t)} |")
    return "\n".join(lines) + "\n"
