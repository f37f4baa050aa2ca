"""Choose the instance memory's settings (k, temperature, blend) on dev rooms.

The student segments each room once with its memory off; every memory variant then maps the
same raw embeddings, so the proposals are identical across rows and only naming differs.
Prints AP50 (all / base / novel) per variant, the embedding head alone first. Run it on the
dev rooms (``make data``: data/synth, split dev); test rooms are refused. Write the best row
into the training config's ``memory`` section and rebuild the memory with
``folk-train --memory-only``.

    python bench/sweep_memory.py --data-root data/synth --split dev [--without-unlabelled]

``--without-unlabelled`` adds the shipped setting with the memory's unlabelled (novel)
entries removed: what a class gets whose objects were not in the training rooms at all.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import os
import sys

import numpy as np

DEFAULT_WEIGHTS = "folk_model/folk_model/weights/folk_demo_offline.pt"
DEFAULT_CONFIG = "folk_model/folk_model/configs/train_demo_offline.yaml"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=DEFAULT_WEIGHTS, help="weights with a memory")
    ap.add_argument("--data-root", nargs="+", default=["data/synth"])
    ap.add_argument("--split", default="dev", help="dev rooms; test rooms are refused")
    ap.add_argument("--k", default="1,3,5,8,12", help="comma-separated neighbour counts")
    ap.add_argument("--temperature", default="0.01,0.02,0.05")
    ap.add_argument("--blend", default="0,0.3")
    ap.add_argument("--without-unlabelled", action="store_true")
    ap.add_argument("--config", default=DEFAULT_CONFIG,
                    help="training config (for --without-unlabelled: rebuilds the entries)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from tqdm import tqdm

    from folk_model.config import VLConfig
    from folk_model.eval.ap import InstanceAPEvaluator, Prediction
    from folk_model.eval.cli import evaluation_vocabulary, load_eval_scenes
    from folk_model.labelling import label_embeddings
    from folk_model.student import load_weights
    from folk_model.student.memory import InstanceMemory
    from folk_model.vl import create_vl_encoder

    encoder = create_vl_encoder(VLConfig(), text_only=True)
    seg, manifest = load_weights(args.weights, "cpu", expect=encoder.info())
    memory = seg.memory
    if memory is None:
        print(f"{args.weights} has no instance memory: build one with folk-train --memory-only")
        return 2
    seg.memory = None
    vocab, novel = evaluation_vocabulary(args.data_root, manifest)
    text = encoder.encode_texts(vocab)
    rows = []
    from folk_model.train.data import refuse_test_scene

    for sc in tqdm(load_eval_scenes(args.data_root, args.split), desc="segment", unit="scene"):
        refuse_test_scene(sc.meta, sc.name, "a settings sweep")
        res = seg.segment(sc.points, sc.colors)
        rows.append((sc.instance_ids, sc.instance_labels(),
                     [i.point_indices for i in res.instances],
                     np.array([i.score for i in res.instances], np.float32),
                     res.embeddings(seg.embed_dim)))

    def ap50(mem: InstanceMemory | None) -> tuple[float, float, float]:
        ev = InstanceAPEvaluator(vocab, novel, 100)
        for ids, gt, masks, score, emb in rows:
            if mem is not None and len(emb):
                emb = mem.apply(torch.from_numpy(emb)).numpy()
            lab = label_embeddings(emb, text) if len(emb) else None
            preds = [] if lab is None else [
                Prediction(m, vocab[int(i)], float(s * p))
                for m, i, s, p in zip(masks, lab.label_index, score, lab.score)]
            ev.process(ids, gt, preds)
        ca = ev.evaluate()["class_aware"]
        return 100 * ca["AP50"], 100 * ca["base"]["AP50"], 100 * ca["novel"]["AP50"]

    print(f"{len(rows)} rooms, {sum(len(r[2]) for r in rows)} proposals; memory of "
          f"{len(memory)} entries, shipped setting k={memory.cfg.k} "
          f"T={memory.cfg.temperature} blend={memory.cfg.blend}")
    print(f"{'variant':34s} {'AP50':>5s} {'base':>5s} {'novel':>5s}")
    print(f"{'embedding head alone':34s} " + " ".join(f"{x:5.1f}" for x in ap50(None)))
    grid = itertools.product([int(x) for x in args.k.split(",")],
                             [float(x) for x in args.temperature.split(",")],
                             [float(x) for x in args.blend.split(",")])
    for k, t, b in grid:
        cfg = dataclasses.replace(memory.cfg, k=k, temperature=t, blend=b)
        figs = ap50(InstanceMemory(memory.keys, memory.values, cfg))
        print(f"{f'k={k} T={t} blend={b}':34s} " + " ".join(f"{x:5.1f}" for x in figs),
              flush=True)
    if args.without_unlabelled:
        from folk_model.train.cli import prepare, read_config
        from folk_model.train.memory import memory_entries

        cfg_t, cfg_s, cfg_v, cfg_m = read_config(args.config)
        kw = prepare(cfg_t, cfg_v, cfg_s)
        labelled = np.concatenate([memory_entries(seg, s, kw["text_emb"], cfg_m.min_points)[2]
                                   for s in tqdm(kw["scenes"], desc="entries", unit="scene")])
        if len(labelled) != len(memory):
            print(f"the config's scenes give {len(labelled)} entries, the memory has "
                  f"{len(memory)}: pass the config the memory was built with")
            return 2
        keep = torch.from_numpy(labelled)
        figs = ap50(InstanceMemory(memory.keys[keep], memory.values[keep], memory.cfg))
        print(f"{'shipped, unlabelled entries removed':34s} " +
              " ".join(f"{x:5.1f}" for x in figs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
