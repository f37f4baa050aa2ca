"""Label-score calibration split by the kind of word predicted: one of the weights' training
classes, or a word they never trained on (issue 15, session 22).

The weights' single temperature + Platt map is right overall on dev rooms because the two
groups err in opposite directions (training words too sure, new words far too unsure). This
prints, on the ``--check`` rooms, each group's share right, mean score and ECE under (a) the
weights' own map, (b) one map refitted on the ``--fit`` rooms and (c) one map per group
fitted there (``folk-calibrate --by-word --keep-temperature`` fits the same), with intervals
over the check rooms for (c) minus (a) and (b). Dev rooms only: test rooms are refused.

    python bench/calibration_by_word.py --fit data/synth data/dev2 --check data/dev3

(``make data-dev2 data-dev3``.) Unseen-mesh objects only, as ``folk-calibrate`` fits.
"""

from __future__ import annotations

import argparse
import logging
import sys

import numpy as np
from bench_common import DEFAULT_WEIGHTS, offline


def _embed(seg, manifest, encoder, roots: list[str]):
    """(similarities [N, C], true class [N], room of each mask [N], vocabulary) of the
    unseen-mesh GT masks of the dev rooms of ``roots``."""
    from folk_model.eval.calibrate import embed_rooms, settings_scene_dirs
    from folk_model.eval.cli import evaluation_vocabulary
    from folk_model.eval.meshes import training_meshes
    from folk_model.labelling import normalize

    vocab, _ = evaluation_vocabulary(roots, manifest)
    text = normalize(encoder.encode_texts(vocab))
    rooms = embed_rooms(seg, settings_scene_dirs(roots, "dev"), vocab, text,
                        training_meshes(manifest, roots), 100, desc=" ".join(roots))
    new_mesh = np.array([v is not True for v in rooms.on_train], bool)
    return (rooms.scored[new_mesh], rooms.target[new_mesh],
            np.asarray(rooms.scene_of)[new_mesh], vocab)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    ap.add_argument("--fit", nargs="+", required=True, help="dataset roots to fit maps on")
    ap.add_argument("--check", nargs="+", required=True, help="dataset roots to judge them on")
    ap.add_argument("--bins", type=int, default=15)
    ap.add_argument("--bootstrap", type=int, default=1000,
                    help="resamples of the check rooms for the intervals of ECE differences")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    offline()

    from folk_model.eval.calibrate import Fitted, fit
    from folk_model.eval.calibration import reliability_bins, top1
    from folk_model.labelling import calibrated_scores, new_words
    from folk_model.student import load_weights
    from folk_model.train.data import TestSceneError
    from folk_model.vl import create_vl_encoder, load_vl_config

    seg, manifest = load_weights(args.weights, "cpu")
    encoder = create_vl_encoder(load_vl_config(None, manifest, "cpu"), text_only=True)
    temperature = float(seg.cfg.label_temperature)
    try:
        fit_sim, fit_target, _, vocab = _embed(seg, manifest, encoder, args.fit)
        sim, target, room, vocab_check = _embed(seg, manifest, encoder, args.check)
    except TestSceneError as exc:
        print(exc, file=sys.stderr)
        return 2
    if vocab_check != vocab:
        print("--fit and --check roots have different class lists", file=sys.stderr)
        return 2
    new_word = new_words(vocab, manifest["training"]["classes"])
    fits = {
        "the weights' map (W)": Fitted(temperature, tuple(seg.cfg.label_score_map)),
        "one map refitted (S)": fit(fit_sim, fit_target, temperature),
        "a map per kind of word (G)": fit(fit_sim, fit_target, temperature, new_word),
    }
    conf, right = top1(sim, target, temperature)
    group = new_word[sim.argmax(1)]
    scores = {name: calibrated_scores(conf, f.maps(new_word)[sim.argmax(1)]).astype(np.float64)
              for name, f in fits.items()}

    def ece(score: np.ndarray, mask: np.ndarray) -> float:
        return reliability_bins(score[mask], right[mask], args.bins)["ece"]

    def cell(score: np.ndarray, mask: np.ndarray) -> str:
        return (f"{100 * right[mask].mean():.0f}% / {100 * score[mask].mean():.0f}% "
                f"({100 * ece(score, mask):.1f}%)")

    everything = np.ones(len(target), bool)
    print(f"fit on {' '.join(args.fit)} ({len(fit_target)} masks), checked on "
          f"{' '.join(args.check)} ({len(target)} masks in {len(np.unique(room))} rooms: "
          f"{int((~group).sum())} predicted a training word, {int(group.sum())} a new word); "
          f"T {temperature:.4g}")
    for name, f in fits.items():
        print(f"  {name}: map {tuple(round(v, 4) for v in f.score_map)}"
              + (f", new words {tuple(round(v, 4) for v in f.new_word_map)}"
                 if f.new_word_map else ""))
    print("| map | all: right / mean score (ECE) | predicted a training word | predicted a new "
          "word | mean of the two groups' ECE |\n|---|---|---|---|---|")
    for name, score in scores.items():
        mean_g = (ece(score, ~group) + ece(score, group)) / 2
        print(f"| {name} | {cell(score, everything)} | {cell(score, ~group)} "
              f"| {cell(score, group)} | {100 * mean_g:.1f}% |")

    # paired intervals over the check rooms: G minus each control
    rng = np.random.default_rng(0)
    rooms = np.unique(room)
    rows = {r: np.flatnonzero(room == r) for r in rooms}
    names = list(scores)
    g = names[2]
    diffs: dict[str, list[list[float]]] = {n: [[], [], [], []] for n in names[:2]}
    for _ in range(args.bootstrap):
        sel = np.concatenate([rows[r] for r in rng.choice(rooms, len(rooms))])
        m_all = np.ones(len(sel), bool)
        grp = group[sel]
        if grp.all() or (~grp).all():
            continue

        def e(name: str, mask: np.ndarray, sel: np.ndarray = sel) -> float:
            return reliability_bins(scores[name][sel][mask], right[sel][mask], args.bins)["ece"]

        for n in names[:2]:
            d_tr = e(g, ~grp) - e(n, ~grp)
            d_new = e(g, grp) - e(n, grp)
            diffs[n][0].append(d_tr)
            diffs[n][1].append(d_new)
            diffs[n][2].append((d_tr + d_new) / 2)
            diffs[n][3].append(e(g, m_all) - e(n, m_all))
    print("\nECE of G minus a control, points [95% over resampled check rooms]:")
    for n in names[:2]:
        parts = []
        for label, vals in zip(("training-word group", "new-word group", "mean of groups",
                                "all"), diffs[n], strict=True):
            lo, hi = np.percentile(100 * np.array(vals), [2.5, 97.5])
            parts.append(f"{label} [{lo:+.1f}, {hi:+.1f}]")
        print(f"  vs {n}: " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
