"""Choose the instance memory's settings (k, temperature, blend, min_similarity) on dev rooms.

The student segments each room once with its memory off, and embeds its ground-truth
instances once; every memory variant then maps the same raw embeddings, so the proposals are
identical across rows and only naming differs. Prints per variant AP50 (all / base / novel)
and the top-1 naming of ground-truth masks (all / novel classes / classes whose dev objects
use meshes the weights never trained on), the embedding head alone first, and for each
``min_similarity`` the share of GT instances the memory still names ("known"). Run it on the
dev rooms (``make data``: data/synth, split dev); test rooms are refused. Write the best row
into the training config's ``memory`` section and rebuild the memory with
``folk-train --memory-only``.

    python bench/sweep_memory.py --data-root data/synth --split dev [--without-unlabelled]

``--write`` stores the best memory row in the weights' manifest (the memory's entries are
unchanged): best by the mean of AP50, novel top-1 and unseen-mesh top-1, the three figures
the memory must not lose on (issue 15: it stays only where it helps new words and new
shapes); if the embedding head alone beats every row, the memory is switched off
(min_similarity 1: nothing is looked up) and kept in the file for a user who wants it.

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
from bench_common import DEFAULT_WEIGHTS

DEFAULT_CONFIG = "folk_model/folk_model/configs/train_demo_offline.yaml"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="weights with a memory")
    ap.add_argument("--data-root", nargs="+", default=["data/synth"])
    ap.add_argument("--split", default="dev", help="dev rooms; test rooms are refused")
    ap.add_argument("--k", default="1,3,5,8,12", help="comma-separated neighbour counts")
    ap.add_argument("--temperature", default="0.01,0.02,0.05")
    ap.add_argument("--blend", default="0,0.3")
    ap.add_argument("--min-similarity", default="-1",
                    help="comma-separated gates: the memory names only instances whose "
                         "nearest key is at least this similar")
    ap.add_argument("--without-unlabelled", action="store_true")
    ap.add_argument("--write", action="store_true",
                    help="store the best row's memory settings in --weights")
    ap.add_argument("--json", default="", help="write every row here")
    ap.add_argument("--config", default=DEFAULT_CONFIG,
                    help="training config (for --without-unlabelled: rebuilds the entries)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from tqdm import tqdm

    from folk_model.eval.ap import InstanceAPEvaluator, Prediction
    from folk_model.eval.calibrate import embed_ground_truth
    from folk_model.eval.cli import evaluation_vocabulary, load_eval_scenes
    from folk_model.eval.meshes import mesh_seen_by_class, training_meshes
    from folk_model.labelling import label_embeddings
    from folk_model.student import load_weights
    from folk_model.student.memory import InstanceMemory
    from folk_model.vl import create_vl_encoder, load_vl_config

    # the text encoder the weights were trained with (their manifest), as folk-eval does
    seg, manifest = load_weights(args.weights, "cpu")
    encoder = create_vl_encoder(load_vl_config(None, manifest, "cpu"), text_only=True)
    memory = seg.memory
    if memory is None:
        print(f"{args.weights} has no instance memory: build one with folk-train --memory-only")
        return 2
    seg.memory = None
    vocab, novel = evaluation_vocabulary(args.data_root, manifest)
    text = encoder.encode_texts(vocab)
    rows = []
    gt_emb, gt_lab = [], []
    bias = seg.word_bias(vocab)  # the weights' handicap of their training words, if any
    from folk_model.train.data import refuse_test_scene

    scenes = load_eval_scenes(args.data_root, args.split)
    for sc in scenes:
        refuse_test_scene(sc.meta, sc.name, "a settings sweep")
    for sc in tqdm(scenes, desc="segment", unit="scene"):
        e, lab, _ = embed_ground_truth(seg, sc, vocab)
        gt_emb.append(e)
        gt_lab += lab
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
            lab = label_embeddings(emb, text, word_bias=bias) if len(emb) else None
            preds = [] if lab is None else [
                Prediction(m, vocab[int(i)], float(s * p))
                for m, i, s, p in zip(masks, lab.label_index, score, lab.score)]
            ev.process(ids, gt, preds)
        ca = ev.evaluate()["class_aware"]
        return 100 * ca["AP50"], 100 * ca["base"]["AP50"], 100 * ca["novel"]["AP50"]

    gt_emb = np.concatenate(gt_emb)
    gt_idx = np.array([vocab.index(x) for x in gt_lab])
    meshes = training_meshes(manifest, args.data_root)
    seen = mesh_seen_by_class(scenes, meshes, vocab) if meshes else {}
    groups = {"all": np.ones(len(gt_lab), bool),
              "novel": np.isin(gt_lab, list(novel)),
              "unseen-mesh": np.array([seen.get(x) is False for x in gt_lab])}

    def top1(mem: InstanceMemory | None) -> list[float]:
        e = gt_emb if mem is None else mem.apply(torch.from_numpy(gt_emb)).numpy()
        ok = label_embeddings(e, text, word_bias=bias).label_index == gt_idx
        return [100 * ok[g].mean() if g.any() else float("nan") for g in groups.values()]

    def known(mem: InstanceMemory) -> float:
        return 100 * float(mem.known(mem.nearest_similarity(torch.from_numpy(gt_emb))).float()
                           .mean())

    print(f"{len(rows)} rooms, {sum(len(r[2]) for r in rows)} proposals; memory of "
          f"{len(memory)} entries, shipped setting k={memory.cfg.k} "
          f"T={memory.cfg.temperature} blend={memory.cfg.blend}")
    print(f"GT instances: {len(gt_lab)} ({int(groups['novel'].sum())} novel, "
          f"{int(groups['unseen-mesh'].sum())} of unseen-mesh classes)")
    print(f"{'variant':40s} {'AP50':>5s} {'base':>5s} {'novel':>5s} | top-1 {'all':>5s} "
          f"{'novel':>5s} {'unseen':>6s} | known")
    head = [*ap50(None), *top1(None)]
    print(f"{'embedding head alone':40s} " + " ".join(f"{x:5.1f}" for x in head[:3])
          + " |       " + " ".join(f"{x:5.1f}" for x in head[3:]))
    results = [{"variant": "embedding head alone", "memory": None, "AP50": head[0],
                "AP50_base": head[1], "AP50_novel": head[2], "top1": head[3],
                "top1_novel": head[4], "top1_unseen_mesh": head[5], "known": 0.0}]
    grid = itertools.product([int(x) for x in args.k.split(",")],
                             [float(x) for x in args.temperature.split(",")],
                             [float(x) for x in args.blend.split(",")],
                             [float(x) for x in args.min_similarity.split(",")])
    for k, t, b, g in grid:
        cfg = dataclasses.replace(memory.cfg, k=k, temperature=t, blend=b, min_similarity=g)
        mem = InstanceMemory(memory.keys, memory.values, cfg)
        a, t1, kn = ap50(mem), top1(mem), known(mem)
        print(f"{f'k={k} T={t} blend={b} min_sim={g}':40s} "
              + " ".join(f"{x:5.1f}" for x in a) + " |       "
              + " ".join(f"{x:5.1f}" for x in t1) + f" | {kn:5.1f}", flush=True)
        results.append({"variant": f"k={k} T={t} blend={b} min_sim={g}",
                        "memory": dataclasses.asdict(cfg), "AP50": a[0], "AP50_base": a[1],
                        "AP50_novel": a[2], "top1": t1[0], "top1_novel": t1[1],
                        "top1_unseen_mesh": t1[2], "known": kn})
    for r in results:  # plain floats: the manifest is read back with torch's weights_only
        r.update({k: float(v) for k, v in r.items() if isinstance(v, (float, np.floating))})
        r["criterion"] = float(np.nanmean([r["AP50"], r["top1_novel"], r["top1_unseen_mesh"]]))
    best = max(results, key=lambda r: r["criterion"])
    print(f"best by mean(AP50, novel top-1, unseen-mesh top-1): {best['variant']} "
          f"({best['criterion']:.1f}; head alone {results[0]['criterion']:.1f})")
    if args.write:
        from folk_model.student.weights import update_manifest

        chosen = best["memory"] or {**dataclasses.asdict(memory.cfg), "min_similarity": 1.0}
        update_manifest(args.weights, memory={**manifest["memory"], **chosen},
                        memory_sweep={"split": args.split, "data_root": args.data_root,
                                      "rooms": len(rows), "chosen": best["variant"],
                                      "criterion": "mean(AP50, top1_novel, top1_unseen_mesh)",
                                      "figures": best,
                                      "head_alone": results[0],
                                      "previous": dataclasses.asdict(memory.cfg)})
        print(f"wrote memory settings {chosen} into {args.weights} and its manifest")
    if args.json:
        import json
        from pathlib import Path

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "command": " ".join(["bench/sweep_memory.py", *(argv or sys.argv[1:])]),
            "weights": args.weights, "split": args.split, "rooms": len(rows),
            "gt_instances": len(gt_lab), "rows": results}, indent=1))
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
