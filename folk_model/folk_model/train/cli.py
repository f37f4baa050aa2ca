"""``folk-train``: label-guided distillation of the student from a config file.

    folk-train --config cfg.yaml [--resume] [--out-dir DIR]
    torchrun --nproc_per_node 2 -m folk_model.train.cli --config cfg.yaml     (DDP)

The config file (YAML/JSON) has optional sections ``train`` (TrainConfig), ``student``
(StudentConfig) and ``vl`` (VLConfig); ``config_version`` is accepted and ignored.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from folk_model.config import StudentConfig, TrainConfig, VLConfig, from_dict

logger = logging.getLogger(__name__)

SECTIONS = {"train": TrainConfig, "student": StudentConfig, "vl": VLConfig}


def read_config(path: str | Path) -> tuple[TrainConfig, StudentConfig, VLConfig]:
    """Parse a sectioned config file; unknown sections or keys are an error."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    data: Any = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a mapping with sections {sorted(SECTIONS)}")
    unknown = sorted(set(data) - set(SECTIONS) - {"config_version", "seed", "vocabulary",
                                                  "encoder", "scenes"})
    if unknown:
        raise ValueError(f"{p}: unknown sections {unknown}; known: {sorted(SECTIONS)}")
    return (from_dict(TrainConfig, data.get("train") or {}),
            from_dict(StudentConfig, data.get("student") or {}),
            from_dict(VLConfig, data.get("vl") or {}))


def prepare(cfg: TrainConfig, vl_cfg: VLConfig, student_cfg: StudentConfig) -> dict[str, Any]:
    """Load the training scenes and teacher targets; returns kwargs for ``train``."""
    from folk_model.data.loader import load_scene
    from folk_model.train.data import base_vocabulary, load_teacher, read_classes, scene_dirs
    from folk_model.train.train import build_train_scene
    from folk_model.vl import create_vl_encoder

    classes, _ = read_classes(cfg.data_root)
    vocab = base_vocabulary(classes, cfg.novel_classes, cfg.stuff_classes)
    if not vocab:
        raise ValueError("no training classes left after removing novel and stuff classes")
    encoder = create_vl_encoder(vl_cfg, text_only=True)
    info = encoder.info()
    if int(info["dim"]) != student_cfg.embed_dim:
        raise ValueError(f"student embed_dim {student_cfg.embed_dim} != encoder dim {info['dim']}")
    text = encoder.encode_texts(vocab)
    tdir = Path(cfg.teacher_dir or Path(cfg.data_root) / "teacher")
    dirs = scene_dirs(cfg.data_root, cfg.train_split)
    if cfg.max_scenes:
        dirs = dirs[: cfg.max_scenes]
    scenes, sources = [], {}
    for d in dirs:
        sc = load_scene(d)
        teacher = load_teacher(tdir, sc.name, expect=info)
        if teacher is None:
            logger.warning("no teacher output for %s in %s: no distillation targets", sc.name,
                           tdir)
        ts, counts = build_train_scene(sc.name, sc.points, sc.colors, sc.instance_ids,
                                       sc.instance_labels(), teacher, vocab, text,
                                       cfg.stuff_classes, cfg.consistency_fallback,
                                       cfg.unlabelled_targets, cfg.consensus_min_cos)
        scenes.append(ts)
        for k, v in counts.items():
            sources[k] = sources.get(k, 0) + v
    logger.info("%d training scenes, %d classes; distillation targets by source: %s",
                len(scenes), len(vocab), sources)
    concept_emb = None
    if cfg.concepts:
        from folk_model.vl.concepts import concept_names, drop_named

        words = concept_names(cfg.concepts)
        if cfg.concepts_drop_novel:
            words, dropped = drop_named(words, cfg.novel_classes)
            logger.info("concepts %s: dropped %d words that name a novel class: %s",
                        cfg.concepts, len(dropped), "; ".join(dropped))
        concept_emb = encoder.encode_texts(words)
    return {"scenes": scenes, "text_emb": text, "encoder_info": info, "vocab": vocab,
            "extra_manifest": {"target_sources": sources}, "concept_emb": concept_emb}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``folk-train``."""
    ap = argparse.ArgumentParser(prog="folk-train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="YAML/JSON with train/student/vl sections")
    ap.add_argument("--resume", action="store_true", help="continue from <out_dir>/ckpt_last.pt")
    ap.add_argument("--out-dir", default=None, help="override train.out_dir")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from folk_model.train.train import train

    try:
        cfg, student_cfg, vl_cfg = read_config(args.config)
        if args.out_dir:
            cfg.out_dir = args.out_dir
        kw = prepare(cfg, vl_cfg, student_cfg)
        res = train(cfg, student_cfg, resume=args.resume, progress=not args.quiet,
                    vl_cfg=vl_cfg, **kw)
    except (FileNotFoundError, ValueError) as exc:
        logger.error("%s", exc)
        return 2
    if res.weights is not None:
        logger.info("weights: %s; curves: %s", res.weights, res.out_dir / "curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
