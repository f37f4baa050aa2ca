"""Calibration of label scores: expected calibration error, reliability diagrams, the
softmax temperature and the Platt map that make a score of 0.9 right about 9 times in 10.

A label score is the softmax over an instance's cosine similarities to the vocabulary's words
divided by a temperature T (``labelling.label_embeddings``). A low T (0.01) makes nearly every
score read 1.00 whatever the odds; the temperature fitted here minimises the negative
log-likelihood of the ground-truth class (Guo et al. 2017, "On Calibration of Modern Neural
Networks": temperature scaling), measured on embeddings of ground-truth masks of rooms used
for choosing settings (``dev``), never of test rooms. ``folk-calibrate`` runs it and stores T
in the weights (``StudentConfig.label_temperature``).

No torch here: the fit is a 1-D search over log T (NLL is convex in 1/T, so unimodal in
log T): a coarse grid, then golden-section refinement around the best grid point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_BINS = 15  # equal-width confidence bins, as the ECE is usually reported
T_MIN, T_MAX = 1e-4, 10.0  # the search range of the temperature


def _softmax_logits(sim: np.ndarray, temperature: float) -> np.ndarray:
    """log softmax of ``sim / temperature`` along the last axis (float64)."""
    z = np.asarray(sim, np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def probabilities(sim: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(sim / T) [N, C] (float64) of cosine similarities [N, C]."""
    return np.exp(_softmax_logits(sim, temperature))


def nll(sim: np.ndarray, target: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of class ``target`` [N] under softmax(sim / T)."""
    sim = np.asarray(sim, np.float64)
    if len(sim) == 0:
        return float("nan")
    logp = _softmax_logits(sim, temperature)
    return float(-np.mean(logp[np.arange(len(sim)), np.asarray(target, np.int64)]))


def fit_temperature(sim: np.ndarray, target: np.ndarray, t_min: float = T_MIN,
                    t_max: float = T_MAX, grid: int = 61, tol: float = 1e-4) -> float:
    """The temperature minimising ``nll(sim, target, T)`` over [t_min, t_max].

    Args:
        sim: float [N, C] cosine similarities (or any logits times T).
        target: int [N] index of the true class of each row.
        grid: points of the coarse log-spaced grid; golden-section search then refines
            between the best grid point's neighbours to ``tol`` in log T.
    """
    sim = np.asarray(sim, np.float64)
    target = np.asarray(target, np.int64)
    if sim.ndim != 2 or len(sim) == 0:
        raise ValueError("fit_temperature needs similarities [N, C] with N > 0")
    if len(target) != len(sim):
        raise ValueError(f"{len(target)} targets for {len(sim)} rows")

    def f(log_t: float) -> float:
        return nll(sim, target, math.exp(log_t))

    lo, hi = math.log(t_min), math.log(t_max)
    xs = np.linspace(lo, hi, grid)
    vals = [f(x) for x in xs]
    i = int(np.argmin(vals))
    a, b = xs[max(0, i - 1)], xs[min(grid - 1, i + 1)]
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    best = (a + b) / 2
    # the grid point wins when the refinement cannot beat it (a flat or edge optimum)
    return float(math.exp(best if f(best) <= vals[i] else xs[i]))


def fit_score_map(confidence: np.ndarray, correct: np.ndarray, l2: float = 1e-3,
                  iters: int = 100, weights: np.ndarray | None = None) -> tuple[float, float]:
    """Platt scaling of top-1 scores: (a, b) maximising the likelihood of ``correct`` [N]
    under sigmoid(a logit(confidence) + b) (``labelling.calibrated_scores``).

    Why after the temperature: T fits the whole softmax, but the top-1 score alone was not
    monotone in accuracy (under-confident low, over-confident high); a and b bend the top-1
    score without changing any ranking. Newton's method on the 2-parameter logistic NLL with a
    small ``l2`` pull towards (1, 0), so that a sample where every score is right (or wrong)
    gives a finite map. ``weights`` [N] (default equal) weigh each score's term
    (``mesh_weights``: each object mesh counts once however many rooms repeat it).
    """
    conf = np.clip(np.asarray(confidence, np.float64).reshape(-1), 1e-12, 1 - 1e-12)
    y = np.asarray(correct, np.float64).reshape(-1)
    if len(conf) != len(y) or len(conf) == 0:
        raise ValueError(f"fit_score_map needs N > 0 scores and N flags, got {len(conf)}, "
                         f"{len(y)}")
    X = np.stack([np.log(conf) - np.log1p(-conf), np.ones_like(conf)], 1)
    if weights is None:
        sw = np.full(len(y), 1.0 / len(y))
    else:
        sw = np.asarray(weights, np.float64).reshape(-1)
        if len(sw) != len(y) or not np.all(sw >= 0) or sw.sum() <= 0:
            raise ValueError("fit_score_map: weights must be N non-negative numbers, not all 0")
        sw = sw / sw.sum()
    w = np.array([1.0, 0.0])
    prior = w.copy()
    for _ in range(iters):
        z = X @ w
        q = 0.5 * (1 + np.tanh(0.5 * z))
        grad = X.T @ (sw * (q - y)) + l2 * (w - prior)
        hess = (X * (sw * q * (1 - q))[:, None]).T @ X + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w = w - step
        if np.abs(step).max() < 1e-9:
            break
    return float(w[0]), float(w[1])


def mesh_weights(mesh: list[str | None] | np.ndarray) -> np.ndarray | None:
    """A weight per mask, 1 / (masks of its object's mesh), so that each mesh counts once in a
    fit however many rooms repeat it; None (equal weights) when any mask has no mesh record
    (real scans, where every object is its own).

    Why: folk-synth's dev rooms draw on a few dev meshes per class and repeat them, so an
    unweighted fit learns the most repeated meshes. On 80 dev rooms, checked on held-out
    meshes (2-fold, 5 splits), the map fitted this way read 15.0% ECE against 17.6%
    (docs/results/world.md, session 23)."""
    m = list(mesh)
    if not m or any(x is None for x in m):
        return None
    _, inv, cnt = np.unique(np.asarray(m, dtype=str), return_inverse=True, return_counts=True)
    return 1.0 / cnt[inv]


MIN_GROUP_MASKS = 30  # fewest masks a kind of word needs for a score map of its own


def fit_word_maps(sim: np.ndarray, target: np.ndarray, temperature: float,
                  new_word: np.ndarray, weights: np.ndarray | None = None
                  ) -> tuple[tuple[float, float], tuple[float, float]]:
    """(map of labels predicting a training word, map of labels predicting a new word): one
    Platt map (``fit_score_map``) per kind of *predicted* word, of similarities [N, C] with
    true classes [N] at ``temperature``; ``new_word`` bool [C] marks the vocabulary's words
    the weights never trained on.

    Why: one map fitted on both kinds was right on average only because they err in
    opposite directions on dev rooms (a training word right less often than its score, a new
    word far more often). The kind is read off the prediction, which inference knows.
    Raises ValueError when a kind has fewer than ``MIN_GROUP_MASKS`` masks or its map does not
    increase (too few to fit).
    """
    sim = np.asarray(sim, np.float64)
    conf, ok = top1(sim, target, temperature)
    pred_new = np.asarray(new_word, bool)[sim.argmax(axis=1)] if len(sim) else np.zeros(0, bool)
    maps = []
    for kind, mask in (("a training word", ~pred_new), ("a new word", pred_new)):
        if mask.sum() < MIN_GROUP_MASKS:
            raise ValueError(f"{int(mask.sum())} masks predicted {kind}: at least "
                             f"{MIN_GROUP_MASKS} are needed for a map of its own (add dev "
                             "rooms, or fit one map for every word)")
        a, b = fit_score_map(conf[mask], ok[mask],
                             weights=None if weights is None else np.asarray(weights)[mask])
        if a <= 0:
            raise ValueError(f"the map of labels predicting {kind} does not increase "
                             f"({a:.3g}, {b:.3g}): too few or too noisy masks to fit it")
        maps.append((a, b))
    return maps[0], maps[1]


HANDICAP_GRID = tuple(round(0.005 * i, 3) for i in range(21))  # 0 .. 0.1


def handicap_table(sim: np.ndarray, target: np.ndarray, is_new: np.ndarray,
                   grid: Sequence[float] = HANDICAP_GRID) -> list[dict[str, float]]:
    """Top-1 on masks of training classes (base), of new-word classes (novel), all, and the
    harmonic mean H of base and novel, for each handicap ``g`` of ``grid`` subtracted from
    the training words' cosines (``labelling.word_biases``). ``is_new`` bool [C] marks the
    vocabulary's new words; ``sim`` [N, C] are raw cosines."""
    from folk_model.labelling import handicap_biases

    is_new = np.asarray(is_new, bool)
    novel = is_new[target]
    rows = []
    for g in grid:
        right = (sim + handicap_biases(is_new, g)[None, :]).argmax(1) == target
        b = float(right[~novel].mean()) if (~novel).any() else float("nan")
        n = float(right[novel].mean()) if novel.any() else float("nan")
        h = 2 * b * n / (b + n) if b + n > 0 else 0.0
        rows.append({"handicap": float(g), "base": b, "novel": n, "all": float(right.mean()),
                     "h": h})
    return rows


def choose_handicap(sim: np.ndarray, target: np.ndarray, is_new: np.ndarray,
                    grid: Sequence[float] = HANDICAP_GRID) -> float:
    """The handicap of ``grid`` with the highest H (the smallest on a tie): the usual
    criterion of generalised zero-shot learning, which neither kind of class can win alone.
    Raises ValueError without masks of both kinds."""
    novel = np.asarray(is_new, bool)[target]
    if novel.all() or not novel.any():
        raise ValueError("choosing a handicap needs GT masks of training classes and of "
                         "classes the weights never trained on")
    table = handicap_table(sim, target, is_new, grid)
    return table[int(np.argmax([r["h"] for r in table]))]["handicap"]


def group_halvings(groups: Sequence[Any] | np.ndarray, splits: int) -> list[np.ndarray]:
    """``splits`` ways of halving the distinct ``groups`` (a mask's room or its object's
    mesh): bool [N] masks of one half. The groups are ordered by the SHA-1 of seed and name
    (seeds 0, 1, ...; ``splits`` <= 1: sorted by name, unshuffled) and every other one taken,
    so that the halvings do not depend on numpy's generators and every check across groups
    (``calibrate._two_fold``, :func:`handicap_across_meshes`) halves alike. Empty when there
    are fewer than two groups."""
    import hashlib

    groups = np.asarray(groups, dtype=object)
    names = sorted(set(groups.tolist()))
    if len(names) < 2:
        return []
    out = []
    for seed in range(max(1, splits)):
        order = names if splits <= 1 else sorted(
            names, key=lambda g: hashlib.sha1(f"{seed}{g}".encode()).hexdigest())
        out.append(np.isin(groups, order[::2]))
    return out


def handicap_across_meshes(sim: np.ndarray, target: np.ndarray, is_new: np.ndarray,
                           mesh: Sequence[str], splits: int = 5,
                           grid: Sequence[float] = HANDICAP_GRID) -> dict[str, Any]:
    """The handicap chosen on half the object meshes and judged on the masks of the others
    (both ways, ``splits`` halvings by :func:`group_halvings`): what a user's own objects
    would see, since dev rooms repeat a few meshes per class. Returns the choices and the
    held-out changes of H, novel, base and all top-1 against no handicap (percentage
    points)."""
    chosen, d = [], {k: [] for k in ("h", "novel", "base", "all")}
    for half in group_halvings(mesh, splits):
        for fit_on in (half, ~half):
            try:
                g = choose_handicap(sim[fit_on], target[fit_on], is_new, grid)
            except ValueError:
                continue
            held = ~fit_on
            r0, r1 = handicap_table(sim[held], target[held], is_new, (0.0, g))
            chosen.append(g)
            for k in d:
                d[k].append(100 * (r1[k] - r0[k]))
    return {"chosen": chosen, **{f"delta_{k}": float(np.nanmean(v)) if v else float("nan")
                                 for k, v in d.items()}}


def reliability_bins(confidence: np.ndarray, correct: np.ndarray,
                     bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """Per-bin statistics of top-1 confidences [N] and whether each top-1 was right [N].

    Bins are equal-width on [0, 1], right-closed: bin b holds b/B < confidence <= (b+1)/B
    (a confidence of exactly 0 goes to the first). Returns {"edges" [B+1], "count" [B],
    "accuracy" [B], "confidence" [B] (mean per bin; NaN where empty), "ece", "mce",
    "instances", "accuracy_all", "confidence_all"}: plain lists and floats (JSON-able).
    """
    conf = np.asarray(confidence, np.float64).reshape(-1)
    ok = np.asarray(correct, bool).reshape(-1)
    if len(conf) != len(ok):
        raise ValueError(f"{len(conf)} confidences but {len(ok)} correctness flags")
    if np.any((conf < 0) | (conf > 1)) or not np.all(np.isfinite(conf)):
        raise ValueError("confidences must lie in [0, 1]")
    idx = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    acc_sum = np.bincount(idx, weights=ok.astype(np.float64), minlength=bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(count > 0, acc_sum / count, np.nan)
        mean_conf = np.where(count > 0, conf_sum / count, np.nan)
    n = len(conf)
    gap = np.abs(np.nan_to_num(acc) - np.nan_to_num(mean_conf))
    ece = float(np.sum(count * gap) / n) if n else float("nan")
    mce = float(gap[count > 0].max()) if n else float("nan")
    return {"bins": bins, "edges": np.linspace(0, 1, bins + 1).tolist(),
            "count": count.tolist(), "accuracy": acc.tolist(), "confidence": mean_conf.tolist(),
            "ece": ece, "mce": mce, "instances": int(n),
            "accuracy_all": float(ok.mean()) if n else float("nan"),
            "confidence_all": float(conf.mean()) if n else float("nan")}


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray,
                               bins: int = DEFAULT_BINS) -> float:
    """ECE = sum over bins of (n_b / N) * |accuracy_b - mean confidence_b| (equal-width bins
    on [0, 1]; see ``reliability_bins``)."""
    return reliability_bins(confidence, correct, bins)["ece"]


def top1(sim: np.ndarray, target: np.ndarray, temperature: float
         ) -> tuple[np.ndarray, np.ndarray]:
    """(top-1 softmax score [N], top-1 right [N]) of similarities [N, C] at ``temperature``."""
    sim = np.asarray(sim, np.float64)
    if len(sim) == 0:
        return np.zeros(0), np.zeros(0, bool)
    prob = probabilities(sim, temperature)
    return prob.max(axis=1), prob.argmax(axis=1) == np.asarray(target, np.int64)


def calibration_stats(sim: np.ndarray, target: np.ndarray, temperature: float,
                      bins: int = DEFAULT_BINS,
                      score_map: Any = (1.0, 0.0)) -> dict[str, Any]:
    """ECE, NLL, top-1 and the reliability bins of the top-1 label scores of similarities
    [N, C] with true classes [N] at ``temperature``, mapped by ``score_map`` (NLL: of the
    softmax at T): one (a, b), or one per word [C, 2] (``labelling.word_score_maps``), each
    score then mapped by its predicted word's."""
    from folk_model.labelling import calibrated_scores

    sim = np.asarray(sim, np.float64)
    target = np.asarray(target, np.int64)
    conf, ok = top1(sim, target, temperature)
    maps = np.asarray(score_map, np.float64)
    if maps.ndim == 2 and len(sim):
        maps = maps[sim.argmax(axis=1)]
    conf = calibrated_scores(conf, maps).astype(np.float64)
    rel = reliability_bins(conf, ok, bins)
    return {"temperature": float(temperature), "score_map": np.asarray(score_map).tolist(),
            "ece": rel["ece"], "mce": rel["mce"],
            "nll": nll(sim, target, temperature), "top1": rel["accuracy_all"],
            "mean_confidence": rel["confidence_all"], "instances": rel["instances"],
            "reliability": rel}


def plot_reliability(rel: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Draw a reliability diagram (``reliability_bins``' output) into the PNG ``path``:
    accuracy against confidence per bin with each bin's count, the gap to the diagonal
    shaded, the diagonal (perfect calibration), and the ECE in the title; below, how many
    instances fall in each bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.asarray(rel["edges"], np.float64)
    count = np.asarray(rel["count"], np.int64)
    acc = np.asarray(rel["accuracy"], np.float64)
    conf = np.asarray(rel["confidence"], np.float64)
    width = np.diff(edges)
    left = edges[:-1]
    has = count > 0
    fig, (ax, axc) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    ax.bar(left[has], acc[has], width[has], align="edge", color="#4c72b0",
           edgecolor="black", linewidth=0.6, label="accuracy")
    lo, hi = np.minimum(acc, conf), np.maximum(acc, conf)
    ax.bar(left[has], (hi - lo)[has], width[has], bottom=lo[has], align="edge", fill=False,
           hatch="///", edgecolor="#c44e52", linewidth=0.0, label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.plot(conf[has], acc[has], "o", color="black", markersize=3)
    for x, w, a, n in zip(left[has], width[has], acc[has], count[has], strict=True):
        ax.text(x + w / 2, a + 0.01 if a < 0.9 else a - 0.01, str(int(n)), ha="center",
                va="bottom" if a < 0.9 else "top", fontsize=7,
                color="black" if a < 0.9 else "white")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy of the top-1 label")
    ax.legend(loc="upper left", fontsize=8)
    head = f"{title}\n" if title else ""
    ax.set_title(f"{head}ECE {100 * rel['ece']:.1f}% ({rel['bins']} bins, "
                 f"{rel['instances']} instances)", fontsize=10)
    axc.bar(left, count, width, align="edge", color="gray", edgecolor="black", linewidth=0.5)
    axc.set_xlabel("confidence (top-1 label score)")
    axc.set_ylabel("instances")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
