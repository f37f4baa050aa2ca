"""Contact sheet per scene: RGB, depth and instances of a few frames, and a top view."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ...config import SynthConfig


def instance_colors(n: int) -> np.ndarray:
    """uint8 [n + 1, 3] distinct-ish colours; id 0 is dark grey."""
    rng = np.random.default_rng(12345)
    c = (rng.random((n + 1, 3)) * 200 + 55).astype(np.uint8)
    c[0] = 40
    return c


def contact_sheet(out: Path, name: str, poses: np.ndarray, K: np.ndarray, cfg: SynthConfig,
                  points: np.ndarray, colors: np.ndarray, inst: np.ndarray) -> Path:
    """Write ``<out>/preview.png`` and return its path (matplotlib is imported only here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    F = len(poses)
    picks = sorted({0, F // 3, (2 * F) // 3})
    pal = instance_colors(int(inst.max()) if len(inst) else 0)
    fig, axes = plt.subplots(len(picks), 4, figsize=(16, 3.2 * len(picks)))
    axes = np.atleast_2d(axes)
    for r, i in enumerate(picks):
        rgb = np.asarray(Image.open(out / "color" / f"{i}.jpg"))
        depth = np.asarray(Image.open(out / "depth" / f"{i}.png")).astype(np.float32) / 1000
        ins = np.asarray(Image.open(out / "instance" / f"{i}.png")).astype(np.int64)
        axes[r, 0].imshow(rgb)
        axes[r, 0].set_title(f"frame {i} RGB")
        axes[r, 1].imshow(np.where(depth > 0, depth, np.nan), cmap="turbo", vmin=0,
                          vmax=cfg.max_depth)
        axes[r, 1].set_title("depth (m)")
        axes[r, 2].imshow(pal[np.minimum(ins, len(pal) - 1)])
        axes[r, 2].set_title("instances")
    for ax in axes[:, :3].ravel():
        ax.axis("off")
    gs = axes[0, 3].get_gridspec()
    for ax in axes[:, 3]:
        ax.remove()
    top = fig.add_subplot(gs[:, 3])
    res = 0.02
    lo = points[:, :2].min(0)
    ij = ((points[:, :2] - lo) / res).astype(np.int64)
    img = np.full((ij[:, 1].max() + 1, ij[:, 0].max() + 1, 3), 255, np.uint8)
    order = np.argsort(points[:, 2])  # later (higher) points overwrite: the view from above
    c = np.where(inst[order, None] > 0, (0.4 * colors[order] + 0.6 * pal[inst[order]]),
                 colors[order]).astype(np.uint8)
    img[ij[order, 1], ij[order, 0]] = c
    hi = lo + res * np.array([img.shape[1], img.shape[0]])
    top.imshow(img, origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]))
    top.plot(poses[:, 0, 3], poses[:, 1, 3], "r-", lw=1)
    fwd = poses[:, :3, 2]
    top.quiver(poses[::5, 0, 3], poses[::5, 1, 3], fwd[::5, 0], fwd[::5, 1], color="r",
               scale=15, width=0.004)
    top.set_aspect("equal")
    top.set_title(f"{name}: top view, {int(inst.max()) if len(inst) else 0} instances")
    fig.tight_layout()
    path = out / "preview.png"
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return path
