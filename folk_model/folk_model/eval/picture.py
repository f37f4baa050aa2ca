"""Pictures of an evaluation: a scene from above, ground truth beside each method's labels.

Each panel colours instance points by class and writes the label at the instance's centre;
a prediction's label is green when it matches a GT instance of that class at IoU >= 0.5 and
red otherwise, so what a method gets wrong shows at a glance.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Panel:
    """One view of a scene: instance masks (int point indices), their labels, and whether each
    is right (None: ground truth, nothing to judge)."""

    title: str
    masks: Sequence[np.ndarray]
    labels: Sequence[str]
    correct: Sequence[bool] | None = None


def class_color(name: str) -> np.ndarray:
    """A stable RGB colour in [0, 1] per class name (the same class, the same colour in every
    panel and picture)."""
    import matplotlib

    return np.asarray(matplotlib.colormaps["tab20"](zlib.crc32(name.encode()) % 20)[:3])


def prediction_correct(instance_ids: np.ndarray, gt_labels: dict[int, str], mask: np.ndarray,
                       label: str, iou: float = 0.5) -> bool:
    """Whether a predicted mask (point indices) overlaps the GT instance under most of its
    points at IoU >= ``iou`` and that instance's class is ``label``."""
    ids = instance_ids[mask]
    ids = ids[ids > 0]
    if len(ids) == 0:
        return False
    vals, counts = np.unique(ids, return_counts=True)
    best = int(vals[np.argmax(counts)])
    inter = int(counts.max())
    union = len(mask) + int((instance_ids == best).sum()) - inter
    return gt_labels.get(best) == label and inter / max(union, 1) >= iou


def draw_panels(path: str | Path, points: np.ndarray, colors: np.ndarray,
                panels: Sequence[Panel], title: str = "") -> None:
    """Write a PNG with one top-down panel per entry of ``panels`` (points [N, 3] metres,
    colours [N, 3] uint8)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 6.5), squeeze=False)
    base = colors.astype(np.float32) / 255 * 0.3 + 0.6  # the room, faded
    for ax, panel in zip(axes[0], panels):
        col = base.copy()
        owner = np.zeros(len(points), bool)
        for m, lab in zip(panel.masks, panel.labels):
            col[m] = class_color(lab)
            owner[m] = True
        # instances over the room, high points last: what one sees from above
        order = np.lexsort((points[:, 2], owner))
        ax.scatter(points[order, 0], points[order, 1], c=col[order], s=0.8, linewidths=0)
        for j, (m, lab) in enumerate(zip(panel.masks, panel.labels)):
            if len(m) == 0:
                continue
            cx, cy = points[m, 0].mean(), points[m, 1].mean()
            edge = "black"
            if panel.correct is not None:
                edge = "#138a36" if panel.correct[j] else "#c0392b"
            ax.text(cx, cy, lab, fontsize=7, ha="center", va="center", color=edge,
                    bbox={"facecolor": "white", "alpha": 0.8, "pad": 1.2, "linewidth": 0})
        if panel.correct is not None and len(panel.correct):
            n_ok = int(np.sum(panel.correct))
            ax.set_title(f"{panel.title}: {n_ok}/{len(panel.correct)} right")
        else:
            ax.set_title(panel.title)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=110)
    plt.close(fig)
