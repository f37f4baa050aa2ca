"""``folk-teacher SCENES... --out DIR``: teacher embeddings for every scene, resumable.

SCENES are scene folders, or dataset roots (a folder with ``splits/*.txt``), which expand to
every scene listed in their splits (``--split`` picks some). For each scene it writes
``DIR/<scene>.npz`` (arrays, see docs/ARCHITECTURE.md) and then ``DIR/<scene>.json`` (encoder
info, teacher config, seconds per stage); a scene whose json exists is skipped, so an
interrupted run continues where it stopped. ``DIR/config.yaml`` records the VL and teacher
configs and the encoder; a rerun with different settings refuses to mix outputs unless
``--overwrite``. ``DIR/timings.json`` sums up seconds per scene and the share of each stage.

Given masks (``--masks MDIR``): ``MDIR/<scene>.npz`` with either ``masks`` bool [M, N] over the
scene's points, or ``point_indices`` int64 (all masks concatenated) and ``offsets`` int64
[M + 1]. Then the teacher embeds those masks instead of the ground truth.

``--picture`` also writes ``DIR/pictures/<scene>_<instance>.png`` for one instance per scene.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from folk_model.config import TeacherConfig, VLConfig, from_dict, save_config, to_dict

logger = logging.getLogger(__name__)


def expand_scenes(args: list[str], splits: list[str] | None = None) -> list[Path]:
    """Scene folders from scene folders and dataset roots (in split order, no duplicates)."""
    out: list[Path] = []
    for a in args:
        p = Path(a)
        split_dir = p / "splits"
        if split_dir.is_dir():
            files = sorted(split_dir.glob("*.txt"))
            if splits:
                files = [split_dir / f"{s}.txt" for s in splits]
            for f in files:
                for line in f.read_text().splitlines():
                    if line.strip():
                        out.append(p / line.strip())
        elif p.is_dir():
            out.append(p)
        else:
            raise FileNotFoundError(f"not a scene folder or dataset root: {p}")
    seen: set[Path] = set()
    uniq = []
    for s in out:
        if s.resolve() not in seen:
            seen.add(s.resolve())
            uniq.append(s)
    return uniq


def load_configs(path: str | None) -> tuple[VLConfig, TeacherConfig]:
    """``vl:`` and ``teacher:`` sections of a YAML/JSON file (other sections are ignored)."""
    if not path:
        return VLConfig(), TeacherConfig()
    p = Path(path)
    data = (json.loads(p.read_text()) if p.suffix == ".json" else yaml.safe_load(p.read_text()))
    data = data or {}
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a mapping")
    vl = from_dict(VLConfig, data.get("vl") or {})
    return vl, from_dict(TeacherConfig, data.get("teacher") or {})


def load_masks(path: Path, num_points: int) -> list[np.ndarray]:
    """Point-index masks from an npz (``masks`` bool [M, N] or ``point_indices`` + ``offsets``)."""
    with np.load(path, allow_pickle=False) as z:
        if "masks" in z.files:
            m = z["masks"].astype(bool)
            if m.ndim != 2 or m.shape[1] != num_points:
                raise ValueError(f"{path}: masks {m.shape} do not match {num_points} points")
            return [np.flatnonzero(r) for r in m]
        idx, off = z["point_indices"].astype(np.int64), z["offsets"].astype(np.int64)
    if len(idx) and (idx.min() < 0 or idx.max() >= num_points):
        raise ValueError(f"{path}: point indices outside [0, {num_points})")
    return [idx[off[i] : off[i + 1]] for i in range(len(off) - 1)]


def _vocabulary(scene_dir: Path, scene: Any) -> list[str]:
    """Words for the picture's votes: the dataset's classes.json, else the scene's labels."""
    for root in (scene_dir.parent, scene_dir):
        cj = root / "classes.json"
        if cj.is_file():
            return list(json.loads(cj.read_text())["classes"])
    return sorted({v for k, v in scene.label_table.items() if k != 0})


def summarise(out_dir: Path) -> dict[str, Any]:
    """Mean seconds per scene per stage, and each stage's share, over all scene jsons."""
    recs = []
    for js in sorted(out_dir.glob("*.json")):
        if js.name in ("timings.json",):
            continue
        try:
            r = json.loads(js.read_text())
        except json.JSONDecodeError:
            continue
        if r.get("complete"):
            recs.append(r)
    if not recs:
        return {"scenes": 0}
    stages = sorted({k for r in recs for k in r["timings"] if k != "total"})
    mean = {k: float(np.mean([r["timings"].get(k, 0.0) for r in recs])) for k in stages}
    total = float(np.mean([r["timings"]["total"] for r in recs]))
    return {
        "scenes": len(recs),
        "seconds_per_scene": total,
        "seconds_per_stage": mean,
        "share_per_stage": {k: v / max(total, 1e-12) for k, v in mean.items()},
        "instances": int(sum(r["counts"].get("instances", 0) for r in recs)),
        "instances_without_view": int(sum(r["counts"].get("instances_without_view", 0)
                                          for r in recs)),
        "crops": int(sum(r["counts"].get("crops", 0) for r in recs)),
    }


def is_done(out: Path, scene_dir: Path) -> bool:
    """The scene's json exists and is newer than the scene's cloud and ground truth: a scene
    regenerated after its teacher run is redone, not silently paired with stale embeddings."""
    js = out / f"{scene_dir.name}.json"
    if not js.is_file() or not (out / f"{scene_dir.name}.npz").is_file():
        return False
    t = js.stat().st_mtime
    sources = [scene_dir / f"{scene_dir.name}_vh_clean_2.ply",
               scene_dir / f"{scene_dir.name}_inst_gt.txt"]
    return all(not p.is_file() or p.stat().st_mtime <= t for p in sources)


def _check_or_write_config(out: Path, vl: VLConfig, tc: TeacherConfig, info: dict[str, Any],
                           overwrite: bool) -> None:
    """Refuse to mix outputs of different settings in one folder (unless ``overwrite``)."""
    path = out / "config.yaml"
    if path.is_file() and not overwrite:
        old = yaml.safe_load(path.read_text()) or {}
        if old.get("encoder") != info or old.get("teacher") != to_dict(tc):
            raise SystemExit(f"{path} was written with other settings (encoder/teacher); use "
                             "another --out or --overwrite")
    save_config(path, vl=vl, teacher=tc, encoder=info)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="folk-teacher", description=__doc__.split("\n\n")[0])
    ap.add_argument("scenes", nargs="+", help="scene folders or dataset roots (with splits/)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--config", help="YAML/JSON with 'vl:' and 'teacher:' sections")
    ap.add_argument("--masks", help="folder of <scene>.npz masks to embed instead of the GT")
    ap.add_argument("--split", action="append", help="with a dataset root: only these splits")
    ap.add_argument("--overwrite", action="store_true", help="redo scenes already done")
    ap.add_argument("--picture", action="store_true", help="one PNG per scene of one instance")
    ap.add_argument("--picture-instance", type=int, help="instance id for --picture")
    ap.add_argument("--limit", type=int, default=0, help="at most this many scenes (0 = all)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (0 = torch's default; 1 is faster on a busy machine)")
    ap.add_argument("--log-level", default="INFO")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``folk-teacher``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    from tqdm import tqdm

    from folk_model.data.loader import load_scene
    from folk_model.teacher.picture import draw_instance_picture, pick_instance
    from folk_model.teacher.teacher import run_teacher, save_teacher_result
    from folk_model.vl import create_vl_encoder

    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    try:
        vl_cfg, t_cfg = load_configs(args.config)
        scenes = expand_scenes(args.scenes, args.split)
        encoder = create_vl_encoder(vl_cfg)  # a missing checkpoint file fails here
    except (FileNotFoundError, ValueError) as exc:
        logger.error("%s", exc)
        return 2
    if args.limit:
        scenes = scenes[: args.limit]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = encoder.info()
    _check_or_write_config(out, vl_cfg, t_cfg, info, args.overwrite)
    t0 = time.perf_counter()
    encoder.encode_images([np.zeros((32, 32, 3), np.uint8)])  # load now, not in scene 1's time
    load_seconds = time.perf_counter() - t0

    todo = [s for s in scenes if args.overwrite or not is_done(out, s)]
    logger.info("%d scenes, %d to do, output %s", len(scenes), len(todo), out)
    failed: list[str] = []
    bar = tqdm(todo, desc="teacher", unit="scene", dynamic_ncols=True)
    for sdir in bar:
        bar.set_postfix_str(sdir.name)
        try:
            scene = load_scene(sdir)
            masks = None
            if args.masks:
                masks = load_masks(Path(args.masks) / f"{scene.name}.npz", len(scene.points))
            res = run_teacher(scene, encoder, t_cfg, masks=masks)
            save_teacher_result(out, scene.name, res, info, t_cfg,
                                extra={"masks": str(args.masks) if args.masks else "gt"})
            if args.picture and masks is None:
                inst = args.picture_instance or pick_instance(scene)
                draw_instance_picture(scene, encoder, t_cfg, inst, _vocabulary(sdir, scene),
                                      out / "pictures" / f"{scene.name}_{inst}.png")
        except KeyboardInterrupt:
            logger.warning("interrupted; rerun the same command to continue")
            return 130
        except Exception:
            logger.exception("%s failed", sdir)
            failed.append(sdir.name)
    summary = summarise(out)
    summary["encoder"] = info
    summary["encoder_load_seconds_this_run"] = load_seconds
    (out / "timings.json").write_text(json.dumps(summary, indent=1))
    if failed:
        logger.error("%d scenes failed: %s", len(failed), failed)
        return 1
    logger.info("done: %d scenes, %.2f s per scene", summary.get("scenes", 0),
                summary.get("seconds_per_scene", 0.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
