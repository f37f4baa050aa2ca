"""Synthetic indoor scenes in ScanNet's layout (``folk-synth``).

Public API: ``generate_scene(out_root, name, seed, cfg) -> Path`` and
``generate_dataset(out_root, num_scenes, seed, cfg) -> list[Path]``; the catalogue helpers
``load_catalog``, ``class_names``, ``split_models``. Heavy libraries (open3d, trimesh,
matplotlib) are imported only when a scene is generated.
"""

from .catalog import NOVEL_CLASSES, class_names, load_catalog, split_models
from .generate import generate_dataset, generate_scene, label_table

__all__ = ["NOVEL_CLASSES", "class_names", "generate_dataset", "generate_scene", "label_table",
           "load_catalog", "split_models"]
