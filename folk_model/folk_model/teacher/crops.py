"""2D masks from projected 3D points, and the multi-scale crops that go to the encoder.

The scene cloud is sampled every few centimetres, so an instance's visible points project to
a sparse dot pattern; the mask is completed by dilation and hole filling before its box is
taken. Crops that leave the image are padded with a constant colour rather than shifted, so
that every scale stays centred on the object.
"""

from __future__ import annotations

import numpy as np

from folk_model.vl.image_prep import PAD_COLOUR

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), may extend past the image


def points_to_mask(uv: np.ndarray, size: tuple[int, int], dilate_px: int) -> np.ndarray:
    """bool [H, W] mask of projected points ``uv`` float [n, 2], completed where sparse.

    ``size`` is (width, height). Dilation closes the gaps between points; hole filling then
    completes the inside of objects seen through sparse samples.
    """
    from scipy import ndimage

    w, h = size
    mask = np.zeros((h, w), bool)
    if len(uv) == 0:
        return mask
    u = np.floor(uv[:, 0]).astype(np.int64)
    v = np.floor(uv[:, 1]).astype(np.int64)
    ok = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    mask[v[ok], u[ok]] = True
    if dilate_px > 0 and mask.any():
        y0, x0 = np.min(v[ok]), np.min(u[ok])
        y1, x1 = np.max(v[ok]) + 1, np.max(u[ok]) + 1
        r = dilate_px
        ys, xs = slice(max(0, y0 - r), min(h, y1 + r)), slice(max(0, x0 - r), min(w, x1 + r))
        sub = mask[ys, xs]
        st = np.ones((2 * r + 1, 2 * r + 1), bool)
        sub = ndimage.binary_dilation(sub, structure=st)
        sub = ndimage.binary_fill_holes(sub)
        # Erode back by part of the dilation so the box is not inflated by the full radius.
        sub = ndimage.binary_erosion(sub, structure=np.ones((r + 1, r + 1), bool), border_value=1)
        mask[ys, xs] = sub
    return mask


def mask_box(mask: np.ndarray) -> Box | None:
    """Tight box of a bool mask, or None when empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if len(ys) == 0:
        return None
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


def scale_box(box: Box, scale: float) -> Box:
    """The box grown by ``scale`` about its centre (not clipped to the image)."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    hw, hh = (x1 - x0) * scale / 2.0, (y1 - y0) * scale / 2.0
    return (round(cx - hw), round(cy - hh), round(cx + hw), round(cy + hh))


def crop_image(image: np.ndarray, box: Box, pad: tuple[int, int, int] = PAD_COLOUR) -> np.ndarray:
    """uint8 [y1-y0, x1-x0, 3] crop of ``image``; outside the image is filled with ``pad``."""
    x0, y0, x1, y1 = box
    h, w = image.shape[:2]
    out = np.empty((max(0, y1 - y0), max(0, x1 - x0), 3), np.uint8)
    out[:] = pad
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1, :3]
    return out


def multiscale_crops(
    image: np.ndarray, mask: np.ndarray, scales: tuple[float, ...], min_px: int
) -> tuple[list[np.ndarray], list[Box]]:
    """Crops of ``image`` around ``mask`` at each scale; none when the mask's box is smaller
    than ``min_px`` on its longest side (small crops are mostly misread)."""
    box = mask_box(mask)
    if box is None or max(box[2] - box[0], box[3] - box[1]) < min_px:
        return [], []
    boxes = [scale_box(box, s) for s in scales]
    return [crop_image(image, b) for b in boxes], boxes
