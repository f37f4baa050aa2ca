"""Naming of ground-truth masks by two sets of weights on the same rooms, with paired
intervals: top-1 over all masks, over the novel classes and over objects on meshes the
weights never trained on, and the difference with a 95% interval from a paired bootstrap
over the rooms.

    python bench/compare_naming.py --weights runs/NEW/student_eval.pt \
        --baseline folk_model/folk_model/weights/folk_demo_offline.pt

Why: the dev rooms hold 58 instances of novel classes, so a 10-point gap in novel top-1 is
about six objects; a candidate is worse only where the interval says so. Each set of weights
names the masks as the node would (its own memory and settings; the argmax does not depend
on the label temperature). Choose on dev rooms (the default); test rooms only report.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = ROOT / "folk_model/folk_model/weights/folk_demo_offline.pt"


def named_right(weights: str, data_root: str, split: str) -> dict[str, Any]:
    """Per GT mask of the rooms: whether ``weights`` names it right, its room, and whether it
    is of a novel class or on a mesh the weights never trained on."""
    from folk_model.data.loader import list_scenes
    from folk_model.eval.calibrate import embed_rooms
    from folk_model.eval.cli import evaluation_vocabulary
    from folk_model.eval.meshes import training_meshes
    from folk_model.student import load_weights
    from folk_model.vl import create_vl_encoder, load_vl_config

    # the text encoder the weights were trained with (their manifest), as folk-eval does
    seg, manifest = load_weights(weights, "cpu")
    encoder = create_vl_encoder(load_vl_config(None, manifest, "cpu"), text_only=True)
    vocab, novel = evaluation_vocabulary(data_root, manifest)
    text = encoder.encode_texts(vocab)
    rooms = embed_rooms(seg, list_scenes(data_root, split), vocab, text,
                        training_meshes(manifest, [data_root]), desc=Path(weights).name)
    return {"right": rooms.scored.argmax(1) == rooms.target, "target": rooms.target,
            "room": np.asarray(rooms.scene_of, np.int64),
            "groups": {"all": np.ones(len(rooms.target), bool),
                       "novel": np.isin(rooms.classes, list(novel)),
                       "unseen mesh": np.array([t is False for t in rooms.on_train])},
            "rooms": [s.name for s in rooms.scenes]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--baseline", default=str(DEFAULT_BASELINE))
    ap.add_argument("--data-root", default="data/synth")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--json", default=None, help="write the rows here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from folk_model.eval.bootstrap import paired_proportion

    new = named_right(args.weights, args.data_root, args.split)
    base = named_right(args.baseline, args.data_root, args.split)
    if not np.array_equal(new["target"], base["target"]) or new["rooms"] != base["rooms"]:
        print("the two weights saw different masks (another vocabulary?)", file=sys.stderr)
        return 2
    rows = []
    for name, mask in new["groups"].items():
        if mask.any():
            rows.append({"group": name, **paired_proportion(
                new["right"][mask], base["right"][mask], new["room"][mask], args.bootstrap)})
    print(f"{len(new['rooms'])} rooms of {args.data_root} ({args.split}); GT-mask top-1, "
          f"{args.weights} against {args.baseline}; paired bootstrap over the rooms")
    print("| masks | n | top-1 | baseline | difference [95%] | P(new >= baseline) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['group']} | {r['n']} | {r['new']:.1f} | {r['baseline']:.1f} "
              f"| {r['difference']:+.1f} [{r['low']:+.1f}, {r['high']:+.1f}] "
              f"| {r['p_new_ge_baseline']:.2f} |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "command": "python bench/compare_naming.py " + " ".join(
                argv if argv is not None else sys.argv[1:]),
            "weights": args.weights, "baseline": args.baseline, "rooms": new["rooms"],
            "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
