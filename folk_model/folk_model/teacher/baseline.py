"""The teacher pipeline as a classifier: the OpenMask3D-style 2D-projection baseline.

Given 3D instance masks (point-index arrays over ``scene.points``) and a vocabulary, it labels
each mask from its teacher embedding. This is what the student is measured against, for speed
and accuracy, so it reports the seconds spent in each stage.

    clf = TeacherClassifier(encoder, TeacherConfig(), vocabulary=["chair", "table"])
    out = clf.classify(scene, masks)            # masks: list of int64 [n_i] point indices
    out.labels, out.scores, out.embeddings, out.timings, out.shares()
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from folk_model.config import TeacherConfig
from folk_model.data.scene import Scene
from folk_model.labelling import Labelling, label_embeddings
from folk_model.teacher.teacher import TeacherResult, run_teacher
from folk_model.vl.base import VLEncoder

logger = logging.getLogger(__name__)


@dataclass
class BaselineOutput:
    """Labels for M masks.

    Attributes:
        embeddings: float32 [M, D] teacher embeddings (zeros for masks seen in no view).
        labels: str per mask (the vocabulary word; "" when the mask had no usable view).
        scores: float32 [M] label probability (0 when no view).
        labelling: the full ``Labelling`` (top-k, similarities).
        has_view: bool [M] whether any view produced a crop.
        timings: seconds per stage (teacher stages, ``text``, ``label``) and ``total``.
        teacher: the underlying ``TeacherResult``.
    """

    embeddings: np.ndarray
    labels: list[str]
    scores: np.ndarray
    labelling: Labelling
    has_view: np.ndarray
    timings: dict[str, float]
    teacher: TeacherResult

    def shares(self) -> dict[str, float]:
        """Fraction of the total time spent in each stage."""
        total = max(self.timings.get("total", 0.0), 1e-12)
        return {k: v / total for k, v in self.timings.items() if k != "total"}


class TeacherClassifier:
    """Label 3D masks by projecting them into the posed frames and encoding crops.

    Args:
        encoder: the VL encoder (images and texts).
        cfg: teacher settings.
        vocabulary: label words; embedded once through ``encoder.encode_texts`` (cached).
        text_embeddings: alternatively, float32 [M, D] precomputed text embeddings.
        template: prompt template for the vocabulary (None = the encoder's default).
    """

    def __init__(
        self,
        encoder: VLEncoder,
        cfg: TeacherConfig,
        vocabulary: Sequence[str],
        text_embeddings: np.ndarray | None = None,
        template: str | None = None,
    ) -> None:
        self.encoder = encoder
        self.cfg = cfg
        self.vocabulary = list(vocabulary)
        if not self.vocabulary:
            raise ValueError("TeacherClassifier: empty vocabulary")
        t0 = time.perf_counter()
        if text_embeddings is None:
            text_embeddings = encoder.encode_texts(self.vocabulary, template)
        self.text_seconds = time.perf_counter() - t0
        self.text_embeddings = np.asarray(text_embeddings, np.float32)
        if self.text_embeddings.shape != (len(self.vocabulary), encoder.dim):
            raise ValueError(f"text embeddings {self.text_embeddings.shape} do not match "
                             f"vocabulary {len(self.vocabulary)} x D={encoder.dim}")

    def classify(
        self, scene: Scene, masks: Sequence[np.ndarray] | None = None, top_k: int = 5
    ) -> BaselineOutput:
        """Embed and label ``masks`` (None = the scene's GT instances)."""
        t0 = time.perf_counter()
        res = run_teacher(scene, self.encoder, self.cfg, masks=masks)
        t1 = time.perf_counter()
        lab = label_embeddings(res.embedding, self.text_embeddings, top_k=top_k)
        has_view = res.view_valid.any(axis=1)
        labels = [self.vocabulary[int(i)] if v else "" for i, v in zip(lab.label_index, has_view)]
        scores = np.where(has_view, lab.score, 0.0).astype(np.float32)
        timings = dict(res.timings)
        timings.pop("total", None)
        timings["label"] = time.perf_counter() - t1
        timings["total"] = time.perf_counter() - t0
        timings["other"] += max(0.0, timings["total"] - sum(
            v for k, v in timings.items() if k != "total"))
        return BaselineOutput(res.embedding, labels, scores, lab, has_view, timings, res)
