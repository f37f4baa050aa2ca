"""Student vs teacher pipeline on the same held-out scenes and CPU, in one run.

Prints seconds per scene of each method (the teacher pipeline labels the student's own
proposals through 2D views, so both use the same proposals), AP50 of each (all, base, novel
classes), the speed ratio, and the student's time on a 150k-point room.

    python bench/bench_student_vs_teacher.py \
        --weights folk_model/folk_model/weights/folk_demo_offline.pt \
        --data-root data/test --split test [--max-scenes 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from bench_common import DEFAULT_WEIGHTS


def room_of(scenes: list, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A room of exactly ``n`` points: the largest scene, subsampled, or tiled side by side
    (shifted along x) until it has ``n`` points."""
    sc = max(scenes, key=lambda s: len(s.points))
    pts, col = [sc.points], [sc.colors]
    width = float(np.ptp(sc.points[:, 0])) + 0.5
    while sum(len(p) for p in pts) < n:
        pts.append(sc.points + np.array([width * len(pts), 0, 0], np.float32))
        col.append(sc.colors)
    p, c = np.concatenate(pts), np.concatenate(col)
    sel = np.sort(rng.choice(len(p), n, replace=False))
    return p[sel].astype(np.float32), c[sel]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    ap.add_argument("--data-root", nargs="+", default=["data/test"],
                    help="dataset root(s), their --split scenes evaluated together")
    ap.add_argument("--split", default="test")
    ap.add_argument("--max-scenes", type=int, default=0)
    ap.add_argument("--room-points", type=int, default=150_000)
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of the 150k room")
    ap.add_argument("--scene-repeats", type=int, default=3,
                    help="student seconds per scene: median of this many runs")
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--no-teacher", action="store_true")
    ap.add_argument("--no-memory", action="store_true",
                    help="ignore the weights' instance memory (the embedding head alone)")
    ap.add_argument("--bootstrap", type=int, default=1000,
                    help="resamples of the paired scene bootstrap of AP50 (0: none)")
    ap.add_argument("--gt-masks", action="store_true",
                    help="also print recognition (top-1) of both methods on the GT masks")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from folk_model.config import VLConfig
    from folk_model.eval.cli import evaluation_vocabulary, load_eval_scenes
    from folk_model.eval.evaluate import evaluate_scenes
    from folk_model.student import load_weights
    from folk_model.vl import create_vl_encoder

    encoder = create_vl_encoder(VLConfig())
    seg, manifest = load_weights(args.weights, "cpu", expect=encoder.info())
    if args.no_memory:
        seg.memory = None
    vocab, novel = evaluation_vocabulary(args.data_root, manifest)
    text = encoder.encode_texts(vocab)
    scenes = load_eval_scenes(args.data_root, args.split, args.max_scenes)
    clf = None
    if not args.no_teacher:
        from folk_model.eval.cli import DEFAULT_TEACHER_CONFIG, teacher_config
        from folk_model.teacher.baseline import TeacherClassifier

        clf = TeacherClassifier(encoder, teacher_config(str(DEFAULT_TEACHER_CONFIG)), vocab,
                                text_embeddings=text)
        encoder.encode_images([np.zeros((64, 64, 3), np.uint8)])  # load the image model now
    run = evaluate_scenes(seg, scenes, vocab, text, novel, clf, repeats=args.scene_repeats,
                          gt_masks=args.gt_masks, bootstrap=args.bootstrap)
    s = run.summary()
    sec = s["seconds_per_scene"]

    room_p, room_c = room_of(scenes, args.room_points, np.random.default_rng(0))
    seg.segment(room_p, room_c)  # warm-up
    times, stages = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        r = seg.segment(room_p, room_c)
        times.append(time.perf_counter() - t0)
        stages.append(r.timings)
    room_s = statistics.median(times)

    def ap50(res: dict | None, split: str) -> float:
        if res is None:
            return float("nan")
        ca = res["class_aware"]
        return (ca if split == "all" else ca[split])["AP50"]

    mean_pts = float(np.mean([len(sc.points) for sc in scenes]))
    print(f"machine: {platform.processor() or platform.machine()}, torch threads "
          f"{torch.get_num_threads()}, os.cpu_count {os.cpu_count()}")
    print(f"weights: {args.weights}; {len(scenes)} {args.split} scenes "
          f"(mean {mean_pts:.0f} points); novel classes: {', '.join(novel)}")
    mem = manifest.get("memory") if seg.memory is not None else None
    print("instance memory: " + (f"{mem['size']} entries, k={mem['k']}, blend={mem['blend']}"
                                 if mem else "none (embedding head alone)"))
    print(f"student  seconds/scene: {sec['student_total']:.3f}  (median of "
          f"{args.scene_repeats} runs per scene; segment "
          f"{sec['student_segment']:.3f}, label {sec['student_label']:.4f})")
    if clf is not None:
        print(f"teacher  seconds/scene: {sec['teacher_total']:.3f}  (same proposals "
              f"{sec['student_segment']:.3f} + 2D teacher {sec['teacher_2d']:.3f})")
        print(f"speed ratio teacher/student: {sec['teacher_total'] / sec['student_total']:.1f}x")
    for split in ("all", "base", "novel"):
        print(f"AP50 {split:5s}: student {100 * ap50(s['student'], split):5.1f}   teacher "
              f"{100 * ap50(s['teacher'], split):5.1f}")
    boot = s.get("bootstrap")
    if boot:
        pct = round(100 * boot["confidence"])
        for split in ("all", "base", "novel"):
            m = boot["methods"]
            line = f"AP50 {split:5s} {pct}% interval ({boot['samples']} scene resamples): " + \
                "  ".join(f"{k} {100 * v[split]['low']:.1f}..{100 * v[split]['high']:.1f}"
                          for k, v in m.items())
            d = boot["differences"].get("student - teacher", {}).get(split)
            if d:
                line += (f"  student-teacher {100 * d['low']:+.1f}..{100 * d['high']:+.1f}, "
                         f"P(student >= teacher) {d['p_a_ge_b']:.2f}")
            print(line)
    for method, rec in (s.get("recognition") or {}).items():
        print(f"GT-mask top-1 {method:8s}: " + "  ".join(
            f"{split} {100 * rec[split]['top1']:5.1f} (class mean "
            f"{100 * rec[split]['mean_class_top1']:5.1f})" for split in ("all", "base", "novel")))
    print(f"class-agnostic AP50 (the shared proposals): "
          f"{100 * s['student']['class_agnostic']['AP50']:.1f}")
    print(f"{args.room_points}-point room: {room_s:.3f} s median of {args.repeats} "
          f"(stages of the last run: " + ", ".join(f"{k} {v:.3f}"
                                                   for k, v in stages[-1].items()) + ")")
    if args.json:
        s["room"] = {"points": args.room_points, "seconds_median": room_s, "seconds": times}
        s["memory"] = mem
        Path(args.json).write_text(json.dumps(s, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
