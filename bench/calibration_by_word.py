"""Label-score calibration split by the kind of word predicted: one of the weights' training
classes, or a word they never trained on (issue 15, session 22).

The weights' single temperature + Platt map is right overall on dev rooms because the two
groups err in opposite directions (training words too sure, new words far too unsure). This
prints, on the ``--check`` rooms, each group's share right, mean score and ECE under (a) the
weights' own map, (b) one map refitted on the ``--fit`` rooms and (c) one map per group
fitted there (the temperature stays the weights'). Dev rooms only: test rooms are refused.

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
    """(similarities [N, C], true class [N], vocabulary) of the unseen-mesh GT masks of the
    dev rooms of ``roots``."""
    from folk_model.eval.calibrate import embed_rooms, settings_scene_dirs
    from folk_model.eval.cli import evaluation_vocabulary
    from folk_model.eval.meshes import training_meshes
    from folk_model.labelling import normalize

    vocab, _ = evaluation_vocabulary(roots, manifest)
    text = normalize(encoder.encode_texts(vocab))
    rooms = embed_rooms(seg, settings_scene_dirs(roots, "dev"), vocab, text,
                        training_meshes(manifest, roots), 100, desc=" ".join(roots))
    new_mesh = np.array([v is not True for v in rooms.on_train], bool)
    return rooms.sim[new_mesh], rooms.target[new_mesh], vocab


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    ap.add_argument("--fit", nargs="+", required=True, help="dataset roots to fit maps on")
    ap.add_argument("--check", nargs="+", required=True, help="dataset roots to judge them on")
    ap.add_argument("--bins", type=int, default=15)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    offline()

    from folk_model.eval.calibration import fit_score_map, reliability_bins, top1
    from folk_model.labelling import calibrated_scores
    from folk_model.student import load_weights
    from folk_model.train.data import TestSceneError
    from folk_model.vl import create_vl_encoder, load_vl_config

    seg, manifest = load_weights(args.weights, "cpu")
    encoder = create_vl_encoder(load_vl_config(None, manifest, "cpu"), text_only=True)
    temperature = float(seg.cfg.label_temperature)
    trained = set(manifest["training"]["classes"])
    try:
        fit_sim, fit_target, vocab = _embed(seg, manifest, encoder, args.fit)
        sim, target, vocab_check = _embed(seg, manifest, encoder, args.check)
    except TestSceneError as exc:
        print(exc, file=sys.stderr)
        return 2
    if vocab_check != vocab:
        print("--fit and --check roots have different class lists", file=sys.stderr)
        return 2
    new_word = np.array([w not in trained for w in vocab], bool)

    # the predicted word is the most similar one: softmax keeps the order
    conf, right = top1(fit_sim, fit_target, temperature)
    group = new_word[fit_sim.argmax(1)]
    single = fit_score_map(conf, right)
    per_group = {False: fit_score_map(conf[~group], right[~group]),
                 True: fit_score_map(conf[group], right[group])}

    conf, right = top1(sim, target, temperature)
    group = new_word[sim.argmax(1)]
    maps = {
        "the weights' map": calibrated_scores(conf, tuple(seg.cfg.label_score_map)),
        "one map refitted": calibrated_scores(conf, single),
        "a map per group": np.where(group, calibrated_scores(conf, per_group[True]),
                                    calibrated_scores(conf, per_group[False])),
    }

    def cell(score: np.ndarray, mask: np.ndarray) -> str:
        ece = reliability_bins(score[mask].astype(np.float64), right[mask], args.bins)["ece"]
        return (f"{100 * right[mask].mean():.0f}% / {100 * score[mask].mean():.0f}% "
                f"({100 * ece:.1f}%)")

    everything = np.ones(len(target), bool)
    print(f"fit on {' '.join(args.fit)} ({len(fit_target)} masks), checked on "
          f"{' '.join(args.check)} ({len(target)} masks: {int((~group).sum())} predicted a "
          f"training word, {int(group.sum())} a new word); T {temperature:.4g}")
    print("| map | all: right / mean score (ECE) | predicted a training word | predicted a new "
          "word |\n|---|---|---|---|")
    for name, score in maps.items():
        print(f"| {name} | {cell(score, everything)} | {cell(score, ~group)} "
              f"| {cell(score, group)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
