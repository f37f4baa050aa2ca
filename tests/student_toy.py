"""A toy room for student/training tests: a floor plus coloured boxes of a few classes.

Not a fixture module of its own: test_student, test_train and test_eval import it.
"""

from __future__ import annotations

import numpy as np

from folk_model.train.train import TrainScene, build_train_scene

CLASSES = ["chair", "table", "lamp", "sofa"]
COLOURS = {"chair": (200, 30, 30), "table": (30, 200, 30), "lamp": (30, 30, 200),
           "sofa": (200, 200, 30)}
SIZES = {"chair": (0.4, 0.4, 0.8), "table": (0.8, 0.6, 0.7), "lamp": (0.2, 0.2, 1.2),
         "sofa": (1.2, 0.5, 0.6)}


def toy_room(seed: int = 0, n_objects: int = 6, spacing: float = 0.03
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, str]]:
    """Points [N, 3], colours [N, 3], instance ids [N] (0 = floor) and id -> class."""
    rng = np.random.default_rng(seed)
    g = np.arange(0, 4.0, spacing)
    fx, fy = np.meshgrid(g, g)
    pts = [np.stack([fx.ravel(), fy.ravel(), np.zeros(fx.size)], 1)]
    cols = [np.tile([120, 110, 100], (fx.size, 1))]
    inst = [np.zeros(fx.size, np.int32)]
    labels: dict[int, str] = {}
    for i in range(n_objects):
        c = CLASSES[i % len(CLASSES)]
        sx, sy, sz = SIZES[c]
        ox, oy = 0.3 + (i % 3) * 1.3, 0.3 + (i // 3) * 1.8
        n = int(2 * (sx * sy + sx * sz + sy * sz) / spacing**2)
        u = rng.random((n, 3)) * [sx, sy, sz]
        face = rng.integers(0, 3, n)
        side = rng.integers(0, 2, n)
        for ax, size in enumerate((sx, sy, sz)):
            u[face == ax, ax] = side[face == ax] * size
        u[:, 2] += 0.01
        pts.append(u + np.array([ox, oy, 0.0]))
        cols.append(np.tile(COLOURS[c], (n, 1)) + rng.integers(-10, 10, (n, 3)))
        inst.append(np.full(n, i + 1, np.int32))
        labels[i + 1] = c
    return (np.concatenate(pts).astype(np.float32),
            np.clip(np.concatenate(cols), 0, 255).astype(np.uint8),
            np.concatenate(inst), labels)


def toy_text(dim: int, seed: int = 1) -> np.ndarray:
    """Random unit text embeddings [len(CLASSES), dim]."""
    t = np.random.default_rng(seed).normal(size=(len(CLASSES), dim)).astype(np.float32)
    return t / np.linalg.norm(t, axis=1, keepdims=True)


def toy_teacher(labels: dict[int, str], text: np.ndarray, views: int = 3, noise: float = 0.3,
                seed: int = 2) -> dict[str, np.ndarray]:
    """Teacher arrays: each view = its class's text embedding + noise."""
    rng = np.random.default_rng(seed)
    ids = np.array(sorted(labels), np.int32)
    base = np.stack([text[CLASSES.index(labels[int(i)])] for i in ids])
    ve = base[:, None, :] + noise * rng.normal(size=(len(ids), views, text.shape[1]))
    ve /= np.linalg.norm(ve, axis=2, keepdims=True)
    return {"instance_ids": ids, "view_embeddings": ve.astype(np.float32),
            "view_valid": np.ones((len(ids), views), bool),
            "view_weights": np.ones((len(ids), views), np.float32)}


def toy_train_scenes(n: int, dim: int) -> tuple[list[TrainScene], np.ndarray]:
    """``n`` toy TrainScenes with teacher targets over all CLASSES, and the text [C, dim]."""
    text = toy_text(dim)
    out = []
    for s in range(n):
        p, c, i, lab = toy_room(seed=s)
        ts, _ = build_train_scene(f"toy{s}", p, c, i, lab, toy_teacher(lab, text), CLASSES,
                                  text, ("wall", "floor"), "best_view")
        out.append(ts)
    return out, text
