"""``folk-eval``: ScanNet-benchmark instance AP of the student and the teacher pipeline on the
same proposals and the same held-out scenes; writes ``eval.json`` and ``eval.md``.

    folk-eval --weights W.pt --data-root data/synth --split val --out runs/eval [--no-teacher]
    folk-eval --weights W.pt --data-root scannet200_val --out runs/s200 --no-teacher

A dataset root with a ``classes.json`` (``folk-synth``) is evaluated over its classes. A root
without one is read as ScanNet200: ground-truth label ids are ScanNet200's (named by a
``labels.tsv`` / ``scannetv2-labels.combined.tsv`` when present), the vocabulary is the 198
classes of the ScanNet200 instance task, and head / common / tail means are reported. Without
``splits/``, every scene folder of the root is evaluated. Scene folders need only the mesh and
the ground truth with ``--no-teacher``; the teacher pipeline also needs the RGB-D frames.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from folk_model.config import TeacherConfig

logger = logging.getLogger(__name__)

DEFAULT_TEACHER_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "teacher_offline.yaml"


def teacher_config(path: str | None) -> TeacherConfig:
    """The ``teacher:`` section of a YAML/JSON file (defaults when absent or no file)."""
    import yaml

    from folk_model.config import from_dict

    if not path or not Path(path).is_file():
        return TeacherConfig()
    data = yaml.safe_load(Path(path).read_text()) or {}
    return from_dict(TeacherConfig, data.get("teacher") or {})


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``folk-eval``."""
    ap = argparse.ArgumentParser(prog="folk-eval", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="student .pt (manifest beside it)")
    ap.add_argument("--data-root", nargs="+", default=["data/synth"],
                    help="dataset root(s); the scenes of --split of each are evaluated "
                         "together (same classes.json, or none: ScanNet200)")
    ap.add_argument("--split", default="val",
                    help="splits/<split>.txt of each root; a root without splits/: every "
                         "scene folder")
    ap.add_argument("--out", default="runs/eval", help="output folder")
    ap.add_argument("--max-scenes", type=int, default=0,
                    help="0 = all scenes of the split (per root)")
    ap.add_argument("--bootstrap", type=int, default=1000,
                    help="resamples of the paired scene bootstrap of AP50 (0: none)")
    ap.add_argument("--no-teacher", action="store_true", help="evaluate the student only")
    ap.add_argument("--no-memory", action="store_true",
                    help="ignore the weights' instance memory (the embedding head alone)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--vl-config", default=None,
                    help="YAML/JSON with a 'vl:' section (e.g. the folk-train config) or a bare "
                         "VLConfig (default: the encoder the weights were trained with)")
    ap.add_argument("--novel", default=None,
                    help="comma-separated novel classes (default: the weights' manifest, "
                         "else classes.json 'novel')")
    ap.add_argument("--min-region-size", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=1,
                    help="time the student as the median of this many runs per scene")
    ap.add_argument("--gt-masks", action="store_true",
                    help="also measure recognition (top-1/top-5) on the ground-truth masks, "
                         "and the calibration of the student's label scores there (ECE; "
                         "<out>/reliability_student.png)")
    ap.add_argument("--pictures", type=int, default=3,
                    help="write <out>/scene_<name>.png (GT, student, teacher from above) for "
                         "the first N scenes")
    ap.add_argument("--cloud", choices=["mesh", "fused"], default="mesh",
                    help="evaluate on the scene's mesh, or on the map the node fuses from its "
                         "frames (GT carried by nearest vertex within 5 cm): what it publishes")
    ap.add_argument("--teacher-config", default=str(DEFAULT_TEACHER_CONFIG),
                    help="YAML with a 'teacher:' section (the settings the teacher targets "
                         "were made with, e.g. configs/teacher_open_clip.yaml)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    from folk_model.eval.evaluate import evaluate_scenes, markdown_report
    from folk_model.student import WeightsError, load_weights
    from folk_model.student.weights import check_encoder
    from folk_model.vl import create_vl_encoder, load_vl_config

    try:
        # scenes first: a folder that cannot be evaluated fails before any model loads
        scenes = load_eval_scenes(args.data_root, args.split, args.max_scenes,
                                  require_frames=not args.no_teacher)
        segmenter, manifest = load_weights(args.weights, args.device)
        vl_cfg = load_vl_config(args.vl_config, manifest, args.device)
        encoder = create_vl_encoder(vl_cfg, text_only=args.no_teacher)
        check_encoder(manifest, encoder.info(), Path(args.weights))
        if args.no_memory:
            segmenter.memory = None
        override = None
        if args.novel is not None:
            override = [c.strip() for c in args.novel.split(",") if c.strip()]
        vocab, novel = evaluation_vocabulary(args.data_root, manifest, override)
        groups = class_groups(args.data_root)
    except (WeightsError, FileNotFoundError, ValueError) as exc:
        logger.error("%s", exc)
        return 2
    from folk_model.eval.meshes import mesh_groups

    mgroups, mesh_seen = mesh_groups(scenes, manifest, _roots(args.data_root), vocab)
    if mgroups:
        mgroups["novel, unseen-mesh"] = [c for c in mgroups["unseen-mesh"] if c in novel]
        mgroups["base, unseen-mesh"] = [c for c in mgroups["unseen-mesh"] if c not in novel]
    groups = {**groups, **mgroups}
    if args.cloud == "fused":
        from tqdm import tqdm

        from folk_model.eval.online import fused_scene

        scenes = [fused_scene(s) for s in tqdm(scenes, desc="fuse frames", unit="scene")]
    warn_unnamed_ground_truth(scenes, vocab)
    text = encoder.encode_texts(vocab)
    clf = None
    if not args.no_teacher:
        from folk_model.teacher.baseline import TeacherClassifier

        clf = TeacherClassifier(encoder, teacher_config(args.teacher_config), vocab,
                                text_embeddings=text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run = evaluate_scenes(segmenter, scenes, vocab, text, novel, clf, args.min_region_size,
                          repeats=args.repeats, gt_masks=args.gt_masks, progress=True,
                          on_scene=scene_pictures(out, args.pictures, vocab),
                          bootstrap=args.bootstrap, class_groups=groups)
    summary = run.summary()
    summary.update({"weights": str(args.weights), "encoder": encoder.info(),
                    "vocabulary": vocab, "novel": novel, "split": args.split,
                    "data_roots": args.data_root, "device": args.device, "cloud": args.cloud,
                    "mesh_seen_in_training": mesh_seen,
                    "data_fingerprint": data_fingerprint(scenes),
                    "memory": manifest.get("memory") if segmenter.memory is not None else None})
    cal = ((summary.get("recognition") or {}).get("student") or {}).get("calibration")
    if cal:
        from folk_model.eval.calibration import plot_reliability

        plot_reliability(cal["reliability"], out / "reliability_student.png",
                         f"student label scores on GT masks, T = {cal['temperature']:.4g}")
        print(f"student label scores on GT masks: ECE {100 * cal['ece']:.1f}% "
              f"(T = {cal['temperature']:.4g}; {out / 'reliability_student.png'})")
    (out / "eval.json").write_text(json.dumps(summary, indent=1))
    (out / "eval.md").write_text(markdown_report(summary))
    print(results_table(summary))
    logger.info("wrote %s and %s", out / "eval.json", out / "eval.md")
    return 0


def data_fingerprint(scenes: Sequence[Any]) -> dict[str, Any]:
    """What the figures were measured on: each evaluated cloud's ``Scene.fingerprint``
    ([name, digest] in evaluation order; two roots may hold rooms of one name) and one digest
    of them all (12 hex digits), which the report prints."""
    import hashlib

    rooms = [[sc.name, sc.fingerprint()] for sc in scenes]
    joined = "".join(f"{k}:{v};" for k, v in sorted(rooms))
    return {"all": hashlib.sha1(joined.encode()).hexdigest()[:12], "rooms": rooms}


def results_table(summary: dict[str, Any]) -> str:
    """Mean AP / AP50 / AP25 per method as ScanNet's evaluator prints them (in %): the class
    groups (ScanNet200: head, common, tail), base / novel, then the average over classes."""
    rows = [f"{'what':<28}:{'AP':>8}{'AP_50%':>8}{'AP_25%':>8}{'classes':>9}"]
    methods = [("student", summary["student"])]
    if summary.get("teacher"):
        methods.append(("teacher", summary["teacher"]))

    def fmt(x: float) -> str:
        return f"{'n/a':>8}" if x is None or np.isnan(x) else f"{100 * x:8.1f}"

    for name, r in methods:
        ca = r["class_aware"]
        parts = [*ca.get("groups", {}).items(), ("base", ca["base"]), ("novel", ca["novel"]),
                 ("average", ca)]
        for split, d in parts:
            rows.append(f"{name + ' ' + split:<28}:{fmt(d['AP'])}{fmt(d['AP50'])}"
                        f"{fmt(d['AP25'])}{d['num_classes']:>9}")
        ag = r["class_agnostic"]
        rows.append(f"{name + ' class-agnostic':<28}:{fmt(ag['AP'])}{fmt(ag['AP50'])}"
                    f"{fmt(ag['AP25'])}{'-':>9}")
    return "\n".join(rows)


def scene_pictures(out: Path, count: int, vocabulary: Sequence[str],
                   min_conf: float = 0.1) -> Callable[[Any, Any], None] | None:
    """An ``on_scene`` callback drawing the first ``count`` scenes (predictions with a
    confidence of at least ``min_conf``) into ``out/scene_<name>.png``; None for 0."""
    if count <= 0:
        return None
    from folk_model.eval.picture import Panel, draw_panels, prediction_correct

    drawn: list[str] = []

    def draw(scene: Any, o: Any) -> None:
        if len(drawn) >= count:
            return
        drawn.append(scene.name)
        gt = {k: v for k, v in scene.instance_labels().items() if v in vocabulary}
        ids = scene.instance_ids
        panels = [Panel("ground truth", [np.flatnonzero(ids == k) for k in gt], list(gt.values()))]
        methods = [("student", o.student_labels, o.student_conf)]
        if o.teacher_labels is not None:
            methods.append(("teacher pipeline", o.teacher_labels, o.teacher_conf))
        for name, labels, conf in methods:
            keep = [j for j in range(len(o.masks)) if conf[j] >= min_conf and labels[j]]
            masks = [o.masks[j] for j in keep]
            labs = [labels[j] for j in keep]
            panels.append(Panel(name, masks, labs, [prediction_correct(ids, gt, m, lab)
                                                    for m, lab in zip(masks, labs)]))
        draw_panels(out / f"scene_{scene.name}.png", scene.points, scene.colors, panels,
                    title=f"{scene.name}: labels right (green) or wrong (red) at IoU 0.5")

    return draw


def _roots(data_roots: str | Path | Sequence[str | Path]) -> list[Path]:
    """One dataset root or several, as a non-empty list."""
    roots = [data_roots] if isinstance(data_roots, (str, Path)) else list(data_roots)
    if not roots:
        raise ValueError("no dataset root given")
    return [Path(r) for r in roots]


def _is_scannet200(root: Path) -> bool:
    """A root without ``classes.json`` is read as ScanNet200 (its benchmark ground truth)."""
    return not (root / "classes.json").is_file()


def _kinds(roots: list[Path]) -> bool:
    """Whether the roots are ScanNet200 ones; they must all be, or none."""
    kinds = {_is_scannet200(r) for r in roots}
    if len(kinds) > 1:
        raise ValueError("dataset roots mix folk-synth roots (classes.json) and ScanNet200 ones "
                         f"(no classes.json): {[str(r) for r in roots]}; evaluate them apart")
    return kinds.pop()


def evaluation_vocabulary(data_roots: str | Path | Sequence[str | Path],
                          manifest: dict[str, Any],
                          novel: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """(vocabulary, novel classes) of an evaluation.

    With ``classes.json``: every class of the dataset except the stuff classes; several roots
    must list the same classes. Without (ScanNet200): the 198 classes of the ScanNet200
    instance task. Novel classes: those given, else the weights' training record, else the
    dataset's suggestion (classes.json).
    """
    from folk_model.config import TrainConfig
    from folk_model.data.scannet200 import instance_classes
    from folk_model.train.data import read_classes

    roots = _roots(data_roots)
    if _kinds(roots):
        vocab, novel_json = instance_classes(), []
    else:
        stuff = set(TrainConfig().stuff_classes)
        classes, novel_json = read_classes(roots[0])
        vocab = [c for c in classes if c not in stuff]
        for root in roots[1:]:
            if [c for c in read_classes(root)[0] if c not in stuff] != vocab:
                raise ValueError(f"{root}: classes.json differs from {roots[0]}'s")
    if novel is None:
        novel = manifest.get("training", {}).get("novel_classes") or novel_json
    return vocab, list(novel)


def class_groups(data_roots: str | Path | Sequence[str | Path]) -> dict[str, list[str]]:
    """Class groups whose mean AP is reported: ScanNet200's head / common / tail for
    ScanNet200 roots, none for folk-synth roots."""
    from folk_model.data.scannet200 import class_splits

    return class_splits() if _kinds(_roots(data_roots)) else {}


def eval_scene_dirs(root: Path, split: str) -> list[Path]:
    """The scene folders of ``split`` under ``root``: ``splits/<split>.txt`` when the root
    has ``splits/``, else every scene folder (as ScanNet's benchmark folders come)."""
    from folk_model.data.loader import list_scenes

    if (root / "splits").is_dir():
        return list_scenes(root, split)
    dirs = list_scenes(root, None)
    if not dirs:
        raise ValueError(f"{root}: no scene folders (a scene folder <name>/ holds "
                         "<name>_vh_clean_2.ply, or color/ for a recording) and no splits/")
    logger.info("%s: no splits/ folder; evaluating all %d scene folders", root, len(dirs))
    return dirs


def load_eval_scenes(data_roots: str | Path | Sequence[str | Path], split: str,
                     max_scenes: int = 0, require_frames: bool = True) -> list:
    """The scenes of ``split`` under each root in turn (the first ``max_scenes`` of each;
    0 = all). ``require_frames=False`` accepts scene folders with the mesh and ground truth
    only (enough for the student); with True their missing ``color/`` is an error that says
    the teacher pipeline needs the frames."""
    from folk_model.data.loader import SceneError, load_scene

    out = []
    for root in _roots(data_roots):
        dirs = eval_scene_dirs(root, split)
        if max_scenes:
            dirs = dirs[:max_scenes]
        for d in dirs:
            try:
                out.append(load_scene(d, require_frames=require_frames))
            except SceneError as exc:
                if require_frames and not (d / "color").is_dir():
                    raise SceneError(f"{exc}: the teacher pipeline needs the RGB-D frames "
                                     "(export them with ScanNet's SensReader), or run "
                                     "folk-eval with --no-teacher") from exc
                raise
    return out


def warn_unnamed_ground_truth(scenes: Sequence[Any], vocabulary: Sequence[str]) -> None:
    """Log a warning when no GT instance is named with a word of the vocabulary: every AP
    would be n/a, which usually means the label table does not match the classes."""
    vocab = set(vocabulary)
    names = {n for sc in scenes for n in sc.instance_labels().values()}
    if scenes and not names & vocab:
        logger.warning("no ground-truth instance of these %d scenes is named with a class of "
                       "the evaluation (GT names: %s); check the label table (labels.tsv) or "
                       "add a classes.json listing the classes", len(scenes),
                       sorted(names)[:10])


if __name__ == "__main__":
    sys.exit(main())
