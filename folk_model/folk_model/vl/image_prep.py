"""Crop preprocessing shared by the image backends.

Crops arrive at any size and aspect. Both backends letterbox them: the crop is padded to a
square with a constant colour and resized, instead of centre-cropped, because a centre crop
cuts long objects (beds, sofas, tables) and the teacher's crops are already tight around the
object. Measured on rendered furniture (docs/ENVIRONMENT notes): tight crops padded with a
constant colour beat wider or context crops.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PAD_COLOUR = (127, 127, 127)  # mid grey: zero after the (0.5, 0.5) normalisation


def letterbox(crop: np.ndarray, size: int, pad: tuple[int, int, int] = PAD_COLOUR) -> np.ndarray:
    """uint8 [H, W, 3] (any size, grey or RGBA accepted) -> uint8 [size, size, 3]."""
    from PIL import Image

    a = np.asarray(crop)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    a = a[:, :, :3]
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    h, w = a.shape[:2]
    if h == 0 or w == 0:
        return np.full((size, size, 3), pad, np.uint8)
    side = max(h, w)
    canvas = np.empty((side, side, 3), np.uint8)
    canvas[:] = pad
    y0, x0 = (side - h) // 2, (side - w) // 2
    canvas[y0 : y0 + h, x0 : x0 + w] = a
    img = Image.fromarray(canvas).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(img)


def to_tensor_batch(
    crops: Sequence[np.ndarray],
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
):  # -> torch.Tensor [N, 3, size, size]
    """Letterbox, scale to [0, 1] and normalise a list of crops into a float tensor."""
    import torch

    arr = np.stack([letterbox(c, size) for c in crops]).astype(np.float32) / 255.0
    arr = (arr - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(arr.transpose(0, 3, 1, 2).copy())
