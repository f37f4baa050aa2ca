"""Fusion of posed RGB-D frames into a bounded voxel map (ROS-free; used by the ROS node)."""

from folk_model.fusion._kernels import warm_up as compile_kernels
from folk_model.fusion.voxel_map import FuseResult, MapSnapshot, VoxelMap, key_iou

__all__ = ["FuseResult", "MapSnapshot", "VoxelMap", "compile_kernels", "key_iou"]
