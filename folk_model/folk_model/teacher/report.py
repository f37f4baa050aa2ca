"""Measure the teacher: zero-shot accuracy of its embeddings and the baseline's time per scene.

    python -m folk_model.teacher.report --data data/synth --teacher data/synth/teacher \\
        --out docs/results --bench-scenes 5

- Zero-shot accuracy: each GT instance's teacher embedding (from ``folk-teacher``'s outputs)
  against the text embeddings of the dataset's class names (``classes.json``); top-1 / top-5
  per instance, per split, for the suggested novel classes, per class, and per single view.
  Instances that no view saw are counted as wrong (and reported separately).
- Baseline speed: ``TeacherClassifier`` on ``--bench-scenes`` validation scenes with their GT
  masks, after a warm-up scene, seconds per scene and the share of each stage.

Writes ``<out>/teacher.json`` and ``<out>/teacher.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from folk_model.config import TeacherConfig, VLConfig, to_dict
from folk_model.labelling import normalize
from folk_model.vl import create_vl_encoder
from folk_model.vl.base import VLEncoder

logger = logging.getLogger(__name__)


def _splits(root: Path) -> dict[str, str]:
    """Scene name -> split name, from ``splits/*.txt``."""
    out: dict[str, str] = {}
    for f in sorted((root / "splits").glob("*.txt")):
        for line in f.read_text().splitlines():
            if line.strip():
                out[line.strip()] = f.stem
    return out


def _topk_hits(emb: np.ndarray, text: np.ndarray, gt: np.ndarray, k: int) -> np.ndarray:
    """bool [n]: GT index among the k most similar texts (zero embeddings never hit)."""
    if len(emb) == 0:
        return np.zeros(0, bool)
    sim = normalize(emb) @ text.T
    top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    ok = np.linalg.norm(emb, axis=1) > 0
    return (top == gt[:, None]).any(axis=1) & ok


def zero_shot(
    teacher_dir: Path, data_root: Path, encoder: VLEncoder, templates: list[str]
) -> dict[str, Any]:
    """Top-1/top-5 of teacher embeddings against class-name texts (see module docstring)."""
    meta = json.loads((data_root / "classes.json").read_text())
    classes: list[str] = list(meta["classes"])
    novel = set(meta.get("novel", []))
    split_of = _splits(data_root)
    index = {c: i for i, c in enumerate(classes)}
    embs, gts, splits, views, view_gt = [], [], [], [], []
    for npz in sorted(teacher_dir.glob("*.npz")):
        with np.load(npz) as z:
            labels = z["gt_label"]
            keep = np.array([str(s) in index for s in labels], bool)
            if (~keep).any():
                logger.debug("%s: %d instances with labels outside classes.json", npz.stem,
                             int((~keep).sum()))
            embs.append(z["embedding"][keep])
            g = np.array([index[str(s)] for s in labels[keep]], np.int64)
            gts.append(g)
            splits += [split_of.get(npz.stem, "?")] * int(keep.sum())
            ve, vv = z["view_embeddings"][keep], z["view_valid"][keep]
            views.append(ve[vv])
            view_gt.append(np.repeat(g, vv.sum(axis=1)))
    if not embs:
        raise SystemExit(f"no teacher outputs in {teacher_dir}")
    i_emb, i_gt = np.concatenate(embs), np.concatenate(gts)
    v_emb, v_gt = np.concatenate(views), np.concatenate(view_gt)
    i_split = np.array(splits)
    seen = np.linalg.norm(i_emb, axis=1) > 0
    out: dict[str, Any] = {
        "classes": len(classes), "chance_top1": 1.0 / len(classes),
        "chance_top5": min(1.0, 5.0 / len(classes)), "instances": len(i_emb),
        "instances_without_view": int((~seen).sum()), "views": len(v_emb),
        "by_template": {},
    }
    for tpl in templates:
        text = encoder.encode_texts(classes, template=tpl)
        h1, h5 = _topk_hits(i_emb, text, i_gt, 1), _topk_hits(i_emb, text, i_gt, 5)
        res: dict[str, Any] = {"top1": float(h1.mean()), "top5": float(h5.mean()),
                               "top1_seen_only": float(h1[seen].mean()) if seen.any() else 0.0,
                               "view_top1": float(_topk_hits(v_emb, text, v_gt, 1).mean()),
                               "view_top5": float(_topk_hits(v_emb, text, v_gt, 5).mean())}
        for sp in sorted(set(i_split)):
            m = i_split == sp
            res[f"{sp}_top1"], res[f"{sp}_top5"] = float(h1[m].mean()), float(h5[m].mean())
            res[f"{sp}_instances"] = int(m.sum())
        nov = np.array([classes[g] in novel for g in i_gt])
        if nov.any():
            res["novel_top1"], res["novel_top5"] = float(h1[nov].mean()), float(h5[nov].mean())
            res["novel_instances"] = int(nov.sum())
        per_class = {}
        for c, name in enumerate(classes):
            m = i_gt == c
            if m.any():
                per_class[name] = {"n": int(m.sum()), "top1": float(h1[m].mean()),
                                   "top5": float(h5[m].mean())}
        res["per_class"] = per_class
        pred = np.argmax(normalize(i_emb) @ text.T, axis=1)
        confusions: dict[str, int] = {}
        for g, p, s in zip(i_gt, pred, seen):
            if s and g != p:
                key = f"{classes[g]} -> {classes[p]}"
                confusions[key] = confusions.get(key, 0) + 1
        res["top_confusions"] = dict(sorted(confusions.items(), key=lambda kv: -kv[1])[:10])
        out["by_template"][tpl] = res
    return out


def bench_baseline(
    data_root: Path, encoder: VLEncoder, cfg: TeacherConfig, n: int
) -> dict[str, Any]:
    """``TeacherClassifier`` seconds per scene and per stage on ``n`` val scenes (GT masks)."""
    from folk_model.data.loader import list_scenes, load_scene
    from folk_model.teacher.baseline import TeacherClassifier

    classes = json.loads((data_root / "classes.json").read_text())["classes"]
    try:
        scenes = list_scenes(data_root, "val")
    except Exception:
        scenes = list_scenes(data_root, None)
    scenes = scenes[: n + 1]
    clf = TeacherClassifier(encoder, cfg, classes)
    runs: list[dict[str, float]] = []
    counts: list[tuple[int, int]] = []  # (instances, crops) per timed scene
    for i, sdir in enumerate(scenes):
        t0 = time.perf_counter()
        scene = load_scene(sdir)
        t_load = time.perf_counter() - t0
        out = clf.classify(scene)
        if i == 0:
            continue  # warm-up: first-call costs (allocators, lazy imports) are not per scene
        rec = dict(out.timings)
        rec["load_scene"] = t_load
        rec["total_with_load"] = rec["total"] + t_load
        counts.append((len(out.labels), out.teacher.counts.get("crops", 0)))
        runs.append(rec)
    if not runs:
        return {"scenes": 0}
    keys = list(runs[0])
    mean = {k: float(np.mean([r[k] for r in runs])) for k in keys}
    stages = [k for k in keys if k not in ("total", "total_with_load", "load_scene")]
    return {
        "scenes": len(runs),
        "seconds_per_scene": mean["total"],
        "seconds_per_scene_median": float(np.median([r["total"] for r in runs])),
        "seconds_load_scene": mean["load_scene"],
        "seconds_per_stage": {k: mean[k] for k in stages},
        "share_per_stage": {k: mean[k] / max(mean["total"], 1e-12) for k in stages},
        "instances_per_scene": float(np.mean([c[0] for c in counts])),
        "crops_per_scene": float(np.mean([c[1] for c in counts])),
        "text_seconds_vocabulary": clf.text_seconds,
    }


def write_markdown(res: dict[str, Any], path: Path) -> None:
    """A short human summary of ``res``."""
    zs, b = res["zero_shot"], res.get("baseline", {})
    enc = res["encoder"]
    lines = [
        "# Teacher: zero-shot accuracy and baseline speed",
        "",
        f"Encoder: `{enc['backend']}` `{enc['model']}` (D={enc['dim']}, T={enc.get('top_t')}). "
        f"Machine: {res['machine']}. Generated by `{res['command']}`.",
        "",
        f"## Zero-shot accuracy per instance ({zs['instances']} GT instances, {zs['classes']} "
        f"classes, chance {100 * zs['chance_top1']:.1f}% / {100 * zs['chance_top5']:.1f}%)",
        "",
        "Teacher embedding of each instance vs the class names' text embeddings. Instances no "
        f"view saw ({zs['instances_without_view']}) count as wrong.",
        "",
        "| template | top-1 | top-5 | top-1 (seen only) | per view top-1 | per view top-5 "
        "| train top-1 | val top-1 | novel top-1 |",
        "|---" * 9 + "|",
    ]
    for tpl, r in zs["by_template"].items():
        def pct(key: str, r: dict[str, Any] = r) -> str:
            return f"{100 * r[key]:.1f}%" if key in r else "-"
        lines.append(
            f"| `{tpl}` | {pct('top1')} | {pct('top5')} | {pct('top1_seen_only')} | "
            f"{pct('view_top1')} | {pct('view_top5')} | {pct('train_top1')} | "
            f"{pct('val_top1')} | {pct('novel_top1')} |")
    best = max(zs["by_template"], key=lambda t: zs["by_template"][t]["top1"])
    r = zs["by_template"][best]
    pcs = sorted(r["per_class"].items(), key=lambda kv: -kv[1]["top1"])
    lines += ["", f"Per class (template `{best}`), best and worst:", ""]
    shown = pcs if len(pcs) <= 10 else pcs[:5] + pcs[-5:]
    lines += [f"- {c}: {100 * v['top1']:.0f}% top-1, {100 * v['top5']:.0f}% top-5 (n={v['n']})"
              for c, v in shown]
    lines += ["", "Most frequent confusions: " + ", ".join(
        f"{k} ({v})" for k, v in r["top_confusions"].items())]
    if b.get("scenes"):
        lines += [
            "",
            f"## Teacher-pipeline baseline speed ({b['scenes']} val scenes, GT masks, "
            "after one warm-up scene)",
            "",
            f"{b['seconds_per_scene']:.2f} s per scene (median {b['seconds_per_scene_median']:.2f}"
            f" s), {b['instances_per_scene']:.1f} instances and {b['crops_per_scene']:.0f} crops "
            f"per scene; loading the scene files adds {b['seconds_load_scene']:.2f} s.",
            "",
            "| stage | seconds | share |",
            "|---|---|---|",
        ]
        for k, v in sorted(b["seconds_per_stage"].items(), key=lambda kv: -kv[1]):
            lines.append(f"| {k} | {v:.3f} | {100 * b['share_per_stage'][k]:.1f}% |")
    if "teacher_run" in res:
        t = res["teacher_run"]
        lines += ["", f"Full `folk-teacher` run: {t.get('scenes')} scenes, "
                  f"{t.get('seconds_per_scene', 0):.2f} s per scene on average "
                  f"({t.get('instances')} instances, {t.get('crops')} crops)."]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m folk_model.teacher.report``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="dataset root (classes.json, splits/)")
    ap.add_argument("--teacher", required=True, help="folk-teacher output folder")
    ap.add_argument("--out", default="docs/results", help="folder for teacher.json/.md")
    ap.add_argument("--bench-scenes", type=int, default=5, help="val scenes timed (0 = skip)")
    ap.add_argument("--templates", nargs="+", default=["{}", "a photo of a {}", "a {} in a room"])
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    args = ap.parse_args(argv)
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    data, tdir, out = Path(args.data), Path(args.teacher), Path(args.out)
    import yaml

    tcfg_path = tdir / "config.yaml"
    saved = yaml.safe_load(tcfg_path.read_text()) if tcfg_path.is_file() else {}
    from folk_model.config import from_dict

    vl_cfg = from_dict(VLConfig, saved.get("vl") or {})
    t_cfg = from_dict(TeacherConfig, saved.get("teacher") or {})
    encoder = create_vl_encoder(vl_cfg)
    res: dict[str, Any] = {
        "encoder": encoder.info(), "vl": to_dict(vl_cfg), "teacher": to_dict(t_cfg),
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores shared with other jobs "
                   f"(load average {os.getloadavg()[0]:.1f} at start), torch threads "
                   f"{args.threads or 'default'}",
        "command": "python -m folk_model.teacher.report " + " ".join(argv or sys.argv[1:]),
    }
    res["zero_shot"] = zero_shot(tdir, data, encoder, args.templates)
    if (tdir / "timings.json").is_file():
        res["teacher_run"] = json.loads((tdir / "timings.json").read_text())
    if args.bench_scenes > 0:
        res["baseline"] = bench_baseline(data, encoder, t_cfg, args.bench_scenes)
    out.mkdir(parents=True, exist_ok=True)
    (out / "teacher.json").write_text(json.dumps(res, indent=1))
    write_markdown(res, out / "teacher.md")
    logger.info("wrote %s and %s", out / "teacher.json", out / "teacher.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
