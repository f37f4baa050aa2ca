"""Recognition on ground-truth masks: how well a method names an object it is given.

AP mixes two things: whether the proposals found an object and whether it was named right.
This evaluator takes the second alone: every evaluated GT instance (not a stuff class, at
least ``min_region_size`` points) is embedded by a method and labelled against the
vocabulary; it reports top-1 / top-5 accuracy over all, base and novel instances, the mean
of per-class top-1 (every class weighs the same), per class, and each class's most frequent
wrong name (where a novel class goes is the first thing to look at when it scores 0), and
how well the top-1 label scores are calibrated (``calibration``: expected calibration error,
NLL of the true class, the reliability bins; ``folk_model.eval.calibration``).

Use as detectron2's evaluators are used: ``reset()``, ``process(...)`` per scene,
``evaluate()`` at the end.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from folk_model.labelling import calibrated_scores, label_embeddings, score_maps_by_kind


class RecognitionEvaluator:
    """Top-k accuracy of instance embeddings [K, D] against text embeddings [C, D].

    Args:
        vocabulary: evaluated class names, in the order of the text embeddings.
        text_embeddings: float32 [C, D].
        novel: class names held out from training (reported apart).
        top_k: the wider accuracy reported beside top-1.
        temperature: softmax temperature of the label scores (the student's
            ``cfg.label_temperature``); only the calibration figures depend on it.
        score_map: the Platt map of the scores (``cfg.label_score_map``), or one per word of
            the vocabulary [C, 2] (``StudentSegmenter.score_maps``); ECE and the
            reliability diagram are of the mapped scores, NLL of the softmax at T.
        word_bias: added to each word's cosine before ranking (``StudentSegmenter.word_bias``:
            the handicap of the weights' training words); None = none.
    """

    def __init__(self, vocabulary: Sequence[str], text_embeddings: np.ndarray,
                 novel: Sequence[str] = (), top_k: int = 5,
                 temperature: float = 0.01,
                 score_map: Any = (1.0, 0.0),
                 word_bias: np.ndarray | None = None) -> None:
        self.vocabulary = list(vocabulary)
        self.text = np.asarray(text_embeddings, np.float32)
        self.novel = set(novel)
        self.top_k = top_k
        self.temperature = float(temperature)
        self.word_bias = word_bias
        maps = np.asarray(score_map, np.float64)
        # one (a, b) per word: the map of an instance's predicted word scores it
        self.score_maps = (maps if maps.ndim == 2 else
                           score_maps_by_kind(np.zeros(len(self.vocabulary), bool), tuple(maps)))
        self.reset()

    def reset(self) -> None:
        """Forget every processed instance."""
        self._cls: list[str] = []
        self._rank: list[int] = []  # rank of the GT class (0 = top-1); -1 = no embedding
        self._pred: list[str] = []  # top-1 name ("" = no embedding)
        self._conf: list[float] = []  # top-1 label score (1/C for no embedding)
        self._p_true: list[float] = []  # label score of the true class
        self._scene: list[str] = []  # the room of each instance
        self._mesh: list[str] = []  # the uid of its mesh ("" = no record)

    def process(self, gt_labels: Sequence[str], embeddings: np.ndarray, scene: str = "",
                meshes: Sequence[str | None] | None = None) -> None:
        """One scene: GT class names [K] of the instances and their embeddings [K, D]
        (a zero row, e.g. a mask seen in no view, counts as wrong); ``scene`` names the room
        and ``meshes`` [K] the instances' mesh uids (None: none), for
        :func:`paired_recognition`'s resampling."""
        emb = np.asarray(embeddings, np.float32).reshape(len(gt_labels), -1)
        keep = [i for i, c in enumerate(gt_labels) if c in self.vocabulary]
        if not keep:
            return
        lab = label_embeddings(emb[keep], self.text, top_k=len(self.vocabulary),
                               temperature=self.temperature, word_bias=self.word_bias)
        for j, i in enumerate(keep):
            gt = self.vocabulary.index(gt_labels[i])
            has = bool(np.any(emb[i]))
            r = int(np.flatnonzero(lab.topk_index[j] == gt)[0])
            self._cls.append(gt_labels[i])
            self._rank.append(r if has else -1)
            self._pred.append(self.vocabulary[int(lab.topk_index[j][0])] if has else "")
            self._conf.append(float(calibrated_scores(
                lab.topk_score[j][:1], self.score_maps[int(lab.topk_index[j][0])])[0]))
            self._p_true.append(float(lab.topk_score[j][r]))
            self._scene.append(scene)
            self._mesh.append((meshes[i] if meshes is not None else None) or "")

    def outcomes(self) -> dict[str, np.ndarray]:
        """Per processed instance: ``cls`` (its class), ``right`` (top-1 right), ``novel``,
        ``scene`` and ``mesh`` ("" = no record), in the order processed."""
        cls = np.array(self._cls, dtype=object)
        return {"cls": cls, "right": np.array(self._rank, np.int64) == 0,
                "novel": np.array([c in self.novel for c in cls], bool),
                "scene": np.array(self._scene, dtype=object),
                "mesh": np.array(self._mesh, dtype=object)}

    def evaluate(self) -> dict[str, Any]:
        """{"all" | "base" | "novel": {"top1", "topk", "mean_class_top1", "instances"},
        "per_class": {class: {"top1", "instances", "confused_with", "confused_count"}},
        "top_k", "calibration": {"temperature", "ece", "mce", "nll", "mean_confidence",
        "reliability"}}; NaN where a split is empty. ``confused_with`` is the most frequent wrong
        top-1 name of the class ("" when never wrong or never embedded)."""
        cls = np.array(self._cls, dtype=object)
        rank = np.array(self._rank, np.int64)

        def split(mask: np.ndarray) -> dict[str, float]:
            n = int(mask.sum())
            if n == 0:
                return {"top1": float("nan"), "topk": float("nan"),
                        "mean_class_top1": float("nan"), "instances": 0}
            r = rank[mask]
            per = [float(np.mean(rank[mask & (cls == c)] == 0)) for c in sorted(set(cls[mask]))]
            return {"top1": float(np.mean(r == 0)),
                    "topk": float(np.mean((r >= 0) & (r < self.top_k))),
                    "mean_class_top1": float(np.mean(per)), "instances": n}

        is_novel = np.array([c in self.novel for c in cls], bool)
        every = np.ones(len(cls), bool)
        pred = np.array(self._pred, dtype=object)
        per_class = {}
        for c in sorted(set(cls)):
            mine = cls == c
            wrong = Counter(p for p in pred[mine & (rank != 0)] if p)
            # most frequent wrong name; ties go to the alphabetically first
            name, count = min(wrong.items(), key=lambda kv: (-kv[1], kv[0]), default=("", 0))
            per_class[c] = {"top1": float(np.mean(rank[mine] == 0)),
                            "instances": int(mine.sum()),
                            "confused_with": name, "confused_count": count}
        return {"all": split(every), "base": split(~is_novel), "novel": split(is_novel),
                "per_class": per_class, "top_k": self.top_k,
                "calibration": self.calibration()}

    def calibration(self) -> dict[str, Any]:
        """Calibration of the top-1 label scores over every processed instance (an instance
        with no embedding scores 1/C and counts as wrong)."""
        from folk_model.eval.calibration import reliability_bins

        rel = reliability_bins(np.array(self._conf), np.array(self._rank) == 0)
        p = np.clip(np.array(self._p_true, np.float64), 1e-12, 1.0)
        distinct = np.unique(self.score_maps, axis=0) if len(self.score_maps) else np.zeros((0, 2))
        # one map: (a, b); a map per kind of word: each distinct (a, b)
        score_map = distinct[0].tolist() if len(distinct) == 1 else distinct.tolist()
        return {"temperature": self.temperature, "score_map": score_map,
                "ece": rel["ece"], "mce": rel["mce"],
                "nll": float(-np.mean(np.log(p))) if len(p) else float("nan"),
                "mean_confidence": rel["confidence_all"], "reliability": rel}


def paired_recognition(a: RecognitionEvaluator, b: RecognitionEvaluator, samples: int = 2000
                       ) -> dict[str, dict[str, dict[str, float]]]:
    """GT-mask top-1 of two methods that processed the same instances, and their difference
    with paired bootstrap intervals, per split ("all", "base", "novel"), three ways:

    - ``rooms``: rooms resampled (instances of a room are not independent);
    - ``meshes``: meshes resampled (an object's mesh recurs across rooms, and a method is
      right or wrong mostly by the mesh; without mesh records this equals ``rooms``);
    - ``meshes, each once``: the mean of the meshes' rates, meshes resampled
      (``eval.bootstrap.paired_macro``): how many of the meshes a method names.

    Each entry is :func:`folk_model.eval.bootstrap.paired_proportion`'s dict (``new`` is
    ``a``). Raises ValueError when the two saw different instances."""
    from folk_model.eval.bootstrap import mesh_units, paired_macro, paired_proportion

    oa, ob = a.outcomes(), b.outcomes()
    if not (np.array_equal(oa["cls"], ob["cls"]) and np.array_equal(oa["scene"], ob["scene"])):
        raise ValueError("paired_recognition: the two methods processed different instances")
    room = np.unique(oa["scene"].astype(str), return_inverse=True)[1]
    mesh = mesh_units(list(oa["mesh"]), room)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for split, mask in (("all", np.ones(len(room), bool)), ("base", ~oa["novel"]),
                        ("novel", oa["novel"])):
        ra, rb = oa["right"][mask], ob["right"][mask]
        out[split] = {"rooms": paired_proportion(ra, rb, room[mask], samples),
                      "meshes": paired_proportion(ra, rb, mesh[mask], samples),
                      "meshes, each once": paired_macro(ra, rb, mesh[mask], samples)}
    return out
