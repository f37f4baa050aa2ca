"""A tiny deterministic model for running folk_node over DDS in tests (FOLK_ROS_BACKEND).

- FakeEncoder: texts -> unit vectors seeded by the text (dimension 32).
- FakeSegmenter: connected components of the points above the floor; each instance's
  embedding is the text embedding of its nearest primary colour name ("red", "green",
  "blue"), so a vocabulary with those words labels the test scene's boxes correctly.
  A short sleep stands in for the network, and every call is counted in a file when
  FOLK_FAKE_RUNS_FILE is set (the tests check that relabelling does not run the network).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

DIM = 32
PRIMARIES = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


class FakeEncoder:
    backend, model, dim = "fake", "hash", DIM

    def encode_texts(self, texts, template=None):
        out = []
        for t in texts:
            seed = int(hashlib.md5(t.encode()).hexdigest()[:8], 16)
            v = np.random.default_rng(seed).normal(size=DIM)
            out.append(v / np.linalg.norm(v))
        return np.asarray(out, np.float32).reshape(len(texts), DIM)

    def info(self):
        return {"backend": self.backend, "model": self.model, "dim": self.dim}


@dataclass
class _Inst:
    point_indices: np.ndarray
    score: float
    embedding: np.ndarray


@dataclass
class _Result:
    instances: list
    timings: dict = field(default_factory=dict)


class FakeSegmenter:
    def __init__(self, encoder: FakeEncoder, delay: float) -> None:
        self.enc, self.delay = encoder, delay
        self.names = list(PRIMARIES)
        self.protos = np.array(list(PRIMARIES.values()), np.float32)
        self.text = encoder.encode_texts(self.names)

    def segment(self, points, colors):
        runs = os.environ.get("FOLK_FAKE_RUNS_FILE")
        if runs:
            with open(runs, "a") as f:
                f.write("run\n")
        time.sleep(self.delay)
        idx = np.nonzero(points[:, 2] > 0.04)[0]
        if idx.size == 0:
            return _Result([])
        cell = np.floor(points[idx] / 0.05).astype(np.int64)
        cell -= cell.min(0)
        grid = np.zeros(cell.max(0) + 1, bool)
        grid[tuple(cell.T)] = True
        lab, n = ndimage.label(grid, structure=np.ones((3, 3, 3)))
        comp = lab[tuple(cell.T)]
        out = []
        for c in range(1, n + 1):
            sel = idx[comp == c]
            if sel.size < 20:
                continue
            mean = colors[sel].astype(np.float32).mean(0)
            j = int(np.argmin(np.linalg.norm(self.protos - mean, axis=1)))
            out.append(_Inst(sel.astype(np.int64), 0.9, self.text[j]))
        return _Result(out, {"total": self.delay})


def load(weights: str, device: str):
    enc = FakeEncoder()
    delay = float(os.environ.get("FOLK_FAKE_DELAY", "0.2"))
    return FakeSegmenter(enc, delay), enc, {"encoder": enc.info()}
