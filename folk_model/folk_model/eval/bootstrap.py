"""Paired scene bootstrap of class-aware AP: confidence intervals, and how sure a difference is.

Novel-class AP rests on few instances (a held-out class may have two in 40 rooms), so a
point estimate alone cannot say whether the student is below the teacher. The bootstrap
resamples *scenes* with replacement (matching is per scene, so a resample's AP is the AP of
its scenes' concatenated detections) and draws the *same* scenes for every method, which is
what makes the difference between two methods tighter than either interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from folk_model.eval.ap import (
    AGNOSTIC,
    InstanceAPEvaluator,
    SceneDetections,
    pooled_average_precision,
)


class _ClassTable:
    """One class's detections of every scene, flattened for fast resampling."""

    def __init__(self, parts: list[SceneDetections]) -> None:
        self.scene = np.concatenate([np.full(len(p.y_true), i) for i, p in enumerate(parts)]
                                    + [np.zeros(0, np.int64)]).astype(np.int64)
        self.y_true = np.concatenate([p.y_true for p in parts] + [np.zeros(0)])
        self.y_score = np.concatenate([p.y_score for p in parts] + [np.zeros(0)])
        self.hard_fn = np.array([p.hard_fn for p in parts], np.int64)
        self.has_gt = np.array([p.has_gt for p in parts], bool)
        self.has_pred = np.array([p.has_pred for p in parts], bool)

    def ap(self, mult: np.ndarray) -> float:
        """AP of the resample in which scene i appears ``mult[i]`` times."""
        w = mult[self.scene]
        return pooled_average_precision(np.repeat(self.y_true, w), np.repeat(self.y_score, w),
                                        int(mult @ self.hard_fn),
                                        bool((mult[self.has_gt] > 0).any()),
                                        bool((mult[self.has_pred] > 0).any()))


def _split_mean(per: np.ndarray, cols: list[int]) -> np.ndarray:
    """Mean over classes ``cols`` of per-class AP [B, C], NaN classes left out."""
    sub = per[:, cols]
    ok = ~np.isnan(sub)
    with np.errstate(invalid="ignore"):
        return np.where(ok.any(1), np.nansum(sub, 1) / np.maximum(ok.sum(1), 1), np.nan)


def paired_bootstrap(evaluators: Mapping[str, InstanceAPEvaluator], samples: int = 1000,
                     threshold: float = 0.5, confidence: float = 0.95, seed: int = 0,
                     agnostic: bool = False) -> dict[str, Any]:
    """Bootstrap intervals of mean class-aware AP at one IoU threshold (0.5: AP50).

    Args:
        evaluators: method name -> evaluator; all processed the same scenes in the same order.
        samples: bootstrap resamples of the scenes.
        confidence: the interval's coverage (percentile interval).
        agnostic: class-agnostic AP instead (one class; only the split ``all``): how two
            networks' proposals compare on the same rooms (``bench_robustness --baseline``).

    Returns:
        ``{"samples", "threshold", "confidence", "methods": {name: {split: {estimate, low,
        high}}}, "differences": {"a - b": {split: {estimate, low, high, p_a_ge_b}}}}`` for the
        splits all / base / novel; values in [0, 1], ``p_a_ge_b`` the fraction of resamples in
        which method a's mean is at least b's.
    """
    names = list(evaluators)
    if not names:
        raise ValueError("paired_bootstrap: no evaluators")
    first = evaluators[names[0]]
    n = first.num_scenes
    for name in names:
        ev = evaluators[name]
        if ev.classes != first.classes or ev.novel != first.novel:
            raise ValueError(f"paired_bootstrap: {name} evaluates other classes")
        if ev.num_scenes != n:
            raise ValueError(f"paired_bootstrap: {name} processed another number of scenes")
    if n == 0 or not first.classes:
        raise ValueError("paired_bootstrap: no scenes processed or no classes")
    classes = [AGNOSTIC] if agnostic else first.classes
    splits = {"all": list(range(len(classes))),
              "base": [] if agnostic else [i for i, c in enumerate(classes)
                                           if c in set(first.base)],
              "novel": [] if agnostic else [i for i, c in enumerate(classes)
                                            if c in set(first.novel)]}
    rng = np.random.default_rng(seed)
    mults = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(samples)])
    full = np.ones(n, np.int64)
    alpha = (1.0 - confidence) / 2.0
    means: dict[str, dict[str, np.ndarray]] = {}
    estimate: dict[str, dict[str, float]] = {}
    out: dict[str, Any] = {"samples": samples, "threshold": threshold, "confidence": confidence,
                           "scenes": n, "methods": {}, "differences": {}}
    for name in names:
        ev = evaluators[name]
        tables = ([_ClassTable(ev.agnostic_detections(threshold))] if agnostic
                  else [_ClassTable(ev.scene_detections(c, threshold)) for c in classes])
        per = np.array([[t.ap(m) for t in tables] for m in mults])
        point = np.array([[t.ap(full) for t in tables]])
        means[name] = {k: _split_mean(per, cols) for k, cols in splits.items() if cols}
        estimate[name] = {k: float(_split_mean(point, cols)[0])
                          for k, cols in splits.items() if cols}
        out["methods"][name] = {
            k: {"estimate": estimate[name][k],
                "low": float(np.nanquantile(v, alpha)), "high": float(np.nanquantile(v, 1 - alpha))}
            for k, v in means[name].items()}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            d = {}
            for k in means[a]:
                diff = means[a][k] - means[b][k]
                ok = ~np.isnan(diff)
                d[k] = {"estimate": estimate[a][k] - estimate[b][k],
                        "low": float(np.quantile(diff[ok], alpha)) if ok.any() else float("nan"),
                        "high": float(np.quantile(diff[ok], 1 - alpha)) if ok.any()
                        else float("nan"),
                        "p_a_ge_b": float(np.mean(diff[ok] >= 0)) if ok.any() else float("nan")}
            out["differences"][f"{a} - {b}"] = d
    return out


def paired_proportion(new: np.ndarray, base: np.ndarray, scene: np.ndarray,
                      samples: int = 2000, confidence: float = 0.95, seed: int = 0
                      ) -> dict[str, float]:
    """Two methods' rates of success on the same items (bool [N] each; ``scene`` int [N],
    the room of each item), in %, and their difference with a paired scene-bootstrap
    interval: items of a room are not independent (one mesh, one lighting), so rooms are
    resampled, as for AP. ``p_new_ge_baseline``: share of resamples where new >= base;
    ``units``: how many rooms (or other units) were resampled."""
    new, base = np.asarray(new, bool), np.asarray(base, bool)
    scene = np.unique(np.asarray(scene), return_inverse=True)[1]
    if new.shape != base.shape or new.shape != scene.shape:
        raise ValueError("paired_proportion: new, base and scene differ in length")
    if not len(new):
        return _paired_summary(0, 0, float("nan"), float("nan"), np.zeros(0), confidence)
    k = int(scene.max()) + 1
    hits_new = np.bincount(scene, new, minlength=k)
    hits_base = np.bincount(scene, base, minlength=k)
    count = np.bincount(scene, minlength=k).astype(np.float64)
    rng = np.random.default_rng(seed)
    w = np.stack([np.bincount(rng.integers(0, k, k), minlength=k) for _ in range(samples)])
    diff = (w @ hits_new - w @ hits_base) / np.maximum(w @ count, 1)
    return _paired_summary(len(new), k, float(new.mean()), float(base.mean()), diff, confidence)


def _paired_summary(n: int, units: int, new: float, base: float, diff: np.ndarray,
                    confidence: float) -> dict[str, float]:
    """The dict of :func:`paired_proportion` and :func:`paired_macro` (rates in %) from the
    two point rates and the resampled differences ``diff`` (empty: no items, NaNs)."""
    alpha = (1.0 - confidence) / 2.0
    some = len(diff) > 0
    return {"n": n, "units": units, "new": 100 * new, "baseline": 100 * base,
            "difference": 100 * (new - base),
            "low": 100 * float(np.quantile(diff, alpha)) if some else float("nan"),
            "high": 100 * float(np.quantile(diff, 1 - alpha)) if some else float("nan"),
            "p_new_ge_baseline": float(np.mean(diff >= 0)) if some else float("nan")}


def mesh_units(mesh: Sequence[str | None], room: np.ndarray) -> np.ndarray:
    """Resampling units of items by their object's mesh: one int per item, the same for a
    mesh in any room (or dataset root); an item without a mesh record (a real scan) is a
    unit of its room, apart from every mesh."""
    names = [f"mesh:{m}" if m else f"room:{r}" for m, r in zip(mesh, room, strict=True)]
    return np.unique(np.array(names, dtype=str), return_inverse=True)[1].astype(np.int64)


def paired_macro(new: np.ndarray, base: np.ndarray, unit: np.ndarray, samples: int = 2000,
                 confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """As :func:`paired_proportion`, but every unit (a mesh, a class) counts once: the rates
    are means over units of each unit's rate, and units are resampled. Why: on the dev sets
    two lamp meshes hold 133 of the 239 novel-class masks, so an item-weighted rate reads
    one mesh; the macro rate asks how many of the meshes a network names."""
    new, base = np.asarray(new, bool), np.asarray(base, bool)
    unit = np.unique(np.asarray(unit), return_inverse=True)[1]
    if new.shape != base.shape or new.shape != unit.shape:
        raise ValueError("paired_macro: new, base and unit differ in length")
    if not len(new):
        return _paired_summary(0, 0, float("nan"), float("nan"), np.zeros(0), confidence)
    k = int(unit.max()) + 1
    count = np.bincount(unit, minlength=k).astype(np.float64)
    rate_new = np.bincount(unit, new, minlength=k) / count
    rate_base = np.bincount(unit, base, minlength=k) / count
    rng = np.random.default_rng(seed)
    diff = (rate_new - rate_base)[rng.integers(0, k, (samples, k))].mean(1)
    return _paired_summary(len(new), k, float(rate_new.mean()), float(rate_base.mean()), diff,
                           confidence)
