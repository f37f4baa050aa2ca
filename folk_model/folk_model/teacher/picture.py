"""A picture of what the teacher saw for one instance: chosen views, crops, per-view votes.

One row per chosen view: the frame with the completed 2D mask and crop boxes drawn, then the
crops at each scale; the row title gives the frame, visible points, pooling weight and the
vocabulary word that view's embedding is closest to. It is the quickest way to see why an
instance got a wrong embedding (occluded view, crop too small, misleading text neighbour).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from folk_model.config import TeacherConfig
from folk_model.data.scene import Scene
from folk_model.labelling import label_embeddings
from folk_model.teacher.teacher import gt_masks, read_color, run_teacher
from folk_model.vl.base import VLEncoder

logger = logging.getLogger(__name__)


def pick_instance(scene: Scene) -> int:
    """The GT instance with the most points: cheap to find, and almost always seen from
    several views, so its picture shows view selection at work."""
    masks, ids, _ = gt_masks(scene)
    if not len(ids):
        raise ValueError(f"{scene.name}: no annotated instances")
    return int(ids[int(np.argmax([len(m) for m in masks]))])


def draw_instance_picture(
    scene: Scene,
    encoder: VLEncoder,
    cfg: TeacherConfig,
    instance_id: int,
    vocabulary: Sequence[str],
    path: str | Path,
) -> Path:
    """Write a PNG for GT instance ``instance_id`` of ``scene``; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mask = np.flatnonzero(scene.instance_ids == instance_id)
    if len(mask) == 0:
        raise ValueError(f"{scene.name}: no instance {instance_id}")
    gt = scene.instance_labels().get(int(instance_id), "?")
    res = run_teacher(scene, encoder, cfg, masks=[mask], keep_details=True)
    assert res.details is not None
    views = res.details[0]
    text = encoder.encode_texts(list(vocabulary))
    votes = []
    for d in views:
        e = encoder.encode_images(d.crops).mean(axis=0, keepdims=True)
        lab = label_embeddings(e, text, top_k=1)
        votes.append((vocabulary[int(lab.label_index[0])], float(lab.score[0])))
    final = "(no view)"
    if res.view_valid[0].any():
        lab = label_embeddings(res.embedding[:1], text, top_k=1)
        final = f"{vocabulary[int(lab.label_index[0])]} ({float(lab.score[0]):.2f})"

    ncols = 1 + max([len(d.crops) for d in views] + [1])
    nrows = max(1, len(views))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.8 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, (d, (word, p)) in enumerate(zip(views, votes)):
        img = read_color(scene, d.frame_id)
        if img is not None:
            over = img.copy()
            over[d.mask] = (0.5 * over[d.mask] + np.array([0, 127, 0])).astype(np.uint8)
            axes[r, 0].imshow(over)
            for x0, y0, x1, y1 in d.boxes:
                axes[r, 0].add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False,
                                                   color="yellow", lw=1))
        axes[r, 0].set_title(f"frame {d.frame_id}: {d.visible} pts, w={d.weight:.2f}\n"
                             f"votes: {word} ({p:.2f})", fontsize=8)
        for c, (crop, s) in enumerate(zip(d.crops, cfg.scales)):
            axes[r, c + 1].imshow(crop)
            axes[r, c + 1].set_title(f"scale {s}", fontsize=8)
    fig.suptitle(f"{scene.name} instance {instance_id}: GT '{gt}', teacher: {final}\n"
                 f"encoder {encoder.model}", fontsize=9)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    logger.info("picture: %s", out)
    return out
