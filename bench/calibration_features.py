"""Can a label score read how hard an object is? A dev-only check of calibration features.

    .venv/bin/python bench/calibration_features.py --data-root data/synth --split dev

The shipped label scores (temperature + Platt map, ``folk-calibrate``) are calibrated on dev
rooms' objects on unseen meshes (ECE 9.6%, 2-fold 8.3%) but read too sure on the test rooms
(ECE 14.3%: mean score 51% for 37% right): the test objects are harder at the same score.
A calibrator that also saw how hard an object is could follow such a shift. This script
embeds every GT mask of the rooms (shipped weights, memory on, ``folk-calibrate``'s way),
fits a logistic map of correctness on features of the similarity row at the fitted
temperature, and reports:

1. 2-fold across rooms on the unseen-mesh objects: ECE and NLL of each feature set;
2. a shift of difficulty inside dev: fitted on the unseen-mesh objects, applied to the
   objects on meshes the student trained on (easier): mean score against accuracy. A feature
   that reads difficulty moves the mean score towards the accuracy there.

Features: ``logit`` (of the top softmax probability: the shipped map's only input),
``maxcos`` (the best word's raw cosine), ``gap`` (best minus second cosine). Refuses test
rooms (choosing a calibrator on them would flatter the test figure).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from bench_common import ROOT, add_scene_args

FEATURE_SETS = (["logit"], ["maxcos"], ["gap"], ["logit", "maxcos"], ["logit", "gap"],
                ["logit", "maxcos", "gap"])


def features(sim: np.ndarray, t: float) -> dict[str, np.ndarray]:
    from folk_model.eval.calibration import top1

    p1 = np.clip(top1(sim, np.zeros(len(sim), np.int64), t)[0], 1e-12, 1 - 1e-12)
    cs = np.sort(sim, 1)
    return {"logit": np.log(p1) - np.log1p(-p1), "maxcos": cs[:, -1],
            "gap": cs[:, -1] - cs[:, -2]}


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> np.ndarray:
    from scipy.optimize import minimize

    x1 = np.c_[x, np.ones(len(x))]

    def loss(w: np.ndarray) -> float:
        z = x1 @ w
        return float(np.mean(np.logaddexp(0, z) - y * z) + l2 * np.sum(w[:-1] ** 2))

    return minimize(loss, np.zeros(x1.shape[1]), method="L-BFGS-B").x


class Calibrator:
    """Standardised features -> logistic probability of being right."""

    def __init__(self, sim: np.ndarray, right: np.ndarray, keys: list[str], t: float) -> None:
        f = features(sim, t)
        x = np.stack([f[k] for k in keys], 1)
        self.keys, self.t = keys, t
        self.mu, self.sd = x.mean(0), x.std(0) + 1e-9
        self.w = fit_logistic((x - self.mu) / self.sd, right.astype(np.float64))

    def __call__(self, sim: np.ndarray) -> np.ndarray:
        f = features(sim, self.t)
        x = (np.stack([f[k] for k in self.keys], 1) - self.mu) / self.sd
        return 1.0 / (1.0 + np.exp(-(np.c_[x, np.ones(len(x))] @ self.w)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scene_args(ap)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "folk_model"))
    from folk_model.eval.calibrate import embed_rooms, settings_scene_dirs
    from folk_model.eval.calibration import fit_temperature, reliability_bins
    from folk_model.eval.cli import evaluation_vocabulary
    from folk_model.eval.meshes import training_meshes
    from folk_model.labelling import normalize
    from folk_model.student import load_weights
    from folk_model.vl import create_vl_encoder, load_vl_config

    dirs = settings_scene_dirs([args.data_root], args.split, 0, "calibration")
    seg, manifest = load_weights(args.weights, "cpu")
    enc = create_vl_encoder(load_vl_config(None, manifest, "cpu"), text_only=True)
    vocab, _ = evaluation_vocabulary([args.data_root], manifest)
    text = normalize(enc.encode_texts(vocab))
    er = embed_rooms(seg, dirs, vocab, text, training_meshes(manifest, [args.data_root]),
                     desc="embed GT masks")
    sim_all, target_all = er.scored, er.target
    unseen_a = np.array([v is False for v in er.on_train], bool)
    room_a = np.array(er.scene_of)
    right_all = sim_all.argmax(1) == target_all
    sim, tgt, right, rooms = (sim_all[unseen_a], target_all[unseen_a], right_all[unseen_a],
                              room_a[unseen_a])
    print(f"{len(tgt)} GT masks of objects on unseen meshes ({right.mean():.1%} named right), "
          f"{int((~unseen_a).sum())} on training meshes ({right_all[~unseen_a].mean():.1%})")
    names = np.unique(rooms)
    fold = np.isin(rooms, names[::2])
    print("\n1. 2-fold across rooms, unseen-mesh objects")
    for keys in FEATURE_SETS:
        conf, ok = [], []
        for te in (fold, ~fold):
            t = fit_temperature(sim[~te], tgt[~te])
            conf.append(Calibrator(sim[~te], right[~te], keys, t)(sim[te]))
            ok.append(right[te])
        c, k = np.concatenate(conf), np.concatenate(ok)
        nll = -np.mean(np.log(np.where(k, c, 1 - c)))
        print(f"   {'+'.join(keys):<18} ECE {reliability_bins(c, k, 15)['ece']:6.1%}  "
              f"NLL {nll:.3f}  mean score {c.mean():.1%} for {k.mean():.1%} right")
    print("\n2. fitted on unseen-mesh objects, applied to objects on training meshes")
    t = fit_temperature(sim, tgt)
    sim_seen, right_seen = sim_all[~unseen_a], right_all[~unseen_a]
    for keys in FEATURE_SETS:
        c = Calibrator(sim, right, keys, t)(sim_seen)
        print(f"   {'+'.join(keys):<18} ECE {reliability_bins(c, right_seen, 15)['ece']:6.1%}  "
              f"mean score {c.mean():.1%} for {right_seen.mean():.1%} right")
    return 0


if __name__ == "__main__":
    sys.exit(main())
