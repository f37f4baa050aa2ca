"""The 3D student: sparse UNet, class-agnostic proposals, per-instance VL embeddings.

    segmenter, manifest = load_weights(path, device="cpu", expect=encoder.info())
    result = segmenter.segment(points_f32_Nx3, colors_u8_Nx3)
"""

from folk_model.student.inference import (
    InstancePrediction,
    SegmentationResult,
    StudentSegmenter,
)
from folk_model.student.model import FolkStudent
from folk_model.student.weights import WeightsError, load_weights, save_weights

__all__ = [
    "FolkStudent",
    "InstancePrediction",
    "SegmentationResult",
    "StudentSegmenter",
    "WeightsError",
    "load_weights",
    "save_weights",
]
