"""Scenes in ScanNet's export layout: the ``Scene`` form, its loader, the synthetic generator.

The generator lives in ``folk_model.data.synth`` and is not imported here (it pulls in open3d
and trimesh); the loader needs only numpy and Pillow.
"""

from .loader import (
    SceneError,
    list_scenes,
    load_color,
    load_depth,
    load_depth_raw,
    load_instance_image,
    load_scene,
)
from .scene import Scene

__all__ = ["Scene", "SceneError", "list_scenes", "load_color", "load_depth", "load_depth_raw",
           "load_instance_image", "load_scene"]
