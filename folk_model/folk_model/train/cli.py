"""``folk-train``: label-guided distillation of the student from a config file.

    folk-train --config cfg.yaml [--resume] [--out-dir DIR]
    torchrun --nproc_per_node 2 -m folk_model.train.cli --config cfg.yaml     (DDP)
    folk-train --config cfg.yaml --memory-only WEIGHTS.pt [--memory-out OUT.pt]

The config file (YAML/JSON) has optional sections ``train`` (TrainConfig), ``student``
(StudentConfig), ``vl`` (VLConfig) and ``memory`` (MemoryConfig: with ``k`` > 0 the trained
student's instance memory is stored in its weights); ``config_version`` is accepted and
ignored. ``student.embed_dim`` left out is the VL encoder's D (384 offline, 768 for open_clip's
ViT-L-14-336); the ``vl`` section is recorded in the weights (manifest ``training.vl``), so
that folk-eval builds the same text encoder. ``--memory-only`` trains nothing: it (re)builds
the instance memory of existing weights from the config's training scenes and ``memory``
section.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from folk_model.config import (
    MemoryConfig,
    StudentConfig,
    TrainConfig,
    VLConfig,
    from_dict,
    to_dict,
)

logger = logging.getLogger(__name__)

SECTIONS = {"train": TrainConfig, "student": StudentConfig, "vl": VLConfig,
            "memory": MemoryConfig}


def read_config(path: str | Path) -> tuple[TrainConfig, StudentConfig, VLConfig, MemoryConfig]:
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
    student_data = data.get("student") or {}
    vl_cfg = from_dict(VLConfig, data.get("vl") or {})
    student_cfg = from_dict(StudentConfig, student_data)
    if "embed_dim" not in student_data:  # the student's D follows the VL encoder's
        from folk_model.vl import embedding_dim

        student_cfg.embed_dim = embedding_dim(vl_cfg)
    return (from_dict(TrainConfig, data.get("train") or {}), student_cfg, vl_cfg,
            from_dict(MemoryConfig, data.get("memory") or {}))


def prepare(cfg: TrainConfig, vl_cfg: VLConfig, student_cfg: StudentConfig) -> dict[str, Any]:
    """Load the training scenes and teacher targets; returns kwargs for ``train``."""
    from tqdm import tqdm

    from folk_model.data.loader import load_scene
    from folk_model.train.data import (
        base_vocabulary,
        keep_instances,
        load_fused_cloud,
        load_teacher,
        read_classes,
        refuse_test_scene,
        training_scene_dirs,
    )
    from folk_model.train.train import build_train_scene
    from folk_model.train.worlds import make_close_ups, make_worlds
    from folk_model.vl import create_vl_encoder

    classes, _ = read_classes(cfg.data_root)
    vocab = base_vocabulary(classes, cfg.novel_classes, cfg.stuff_classes)
    if not vocab:
        raise ValueError("no training classes left after removing novel and stuff classes")
    encoder = create_vl_encoder(vl_cfg, text_only=True)
    info = encoder.info()
    if int(info["dim"]) != student_cfg.embed_dim:
        raise ValueError(f"student embed_dim {student_cfg.embed_dim} != encoder dim {info['dim']}"
                         " (leave student.embed_dim out of the config: it follows the encoder)")
    text = encoder.encode_texts(vocab)
    tdir = Path(cfg.teacher_dir or Path(cfg.data_root) / "teacher")
    dirs = training_scene_dirs(cfg)
    scenes, sources, meshes = [], {}, set()
    for d in tqdm(dirs, desc="training rooms", unit="room", disable=len(dirs) < 10):
        sc = load_scene(d)
        refuse_test_scene(sc.meta, sc.name, "training")
        meshes |= {o["model"] for o in sc.meta.get("objects", []) if o.get("model")}
        teacher = load_teacher(tdir, sc.name, expect=info)
        if teacher is None:
            logger.warning("no teacher output for %s in %s: no distillation targets", sc.name,
                           tdir)
        ts, counts = build_train_scene(sc.name, sc.points, sc.colors, sc.instance_ids,
                                       sc.instance_labels(), teacher, vocab, text,
                                       cfg.stuff_classes, cfg.consistency_fallback,
                                       cfg.unlabelled_targets, cfg.consensus_min_cos)
        ts.fused = load_fused_cloud(d, keep_ids=set(ts.inst_class))
        if cfg.noisy_map_p > 0 or cfg.mesh_sampled_p > 0:
            ts.worlds = {k: (p, c, keep_instances(i, set(ts.inst_class)))
                         for k, (p, c, i) in make_worlds(sc, d, cfg).items()}
        if cfg.close_up_p > 0:
            ts.worlds |= {k: (p, c, keep_instances(i, set(ts.inst_class)))
                          for k, (p, c, i) in make_close_ups(sc, d, cfg).items()}
        scenes.append(ts)
        for k, v in counts.items():
            sources[k] = sources.get(k, 0) + v
    logger.info("%d training scenes (%d with a fused map, %s), %d classes; distillation "
                "targets by source: %s", len(scenes), sum(s.fused is not None for s in scenes),
                {k: sum(k in s.worlds for s in scenes) for k in ("mesh", "noisy_map")},
                len(vocab), sources)
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
            # vl: how to rebuild the text encoder (folk-eval / folk-calibrate default to it)
            "extra_manifest": {"target_sources": sources, "meshes": sorted(meshes),
                               "vl": to_dict(vl_cfg)},
            "concept_emb": concept_emb}


def memory_only(cfg: TrainConfig, vl_cfg: VLConfig, mem_cfg: MemoryConfig, weights: str,
                out: str | None, progress: bool = True) -> int:
    """Build the instance memory of existing ``weights`` from the config's training scenes."""
    from folk_model.student.weights import WeightsError, attach_memory, load_weights
    from folk_model.train.memory import build_memory
    from folk_model.vl import create_vl_encoder

    if mem_cfg.k < 1:
        raise ValueError("--memory-only needs a memory section with k >= 1 in the config")
    info = create_vl_encoder(vl_cfg, text_only=True).info()
    try:
        segmenter, manifest = load_weights(weights, cfg.device, expect=info)
    except WeightsError as exc:
        raise ValueError(str(exc)) from exc
    trained = manifest.get("training", {}).get("classes")
    kw = prepare(cfg, vl_cfg, segmenter.cfg)
    if trained is not None and list(trained) != list(kw["vocab"]):
        raise ValueError(f"{weights} was trained on other classes than the config's data "
                         f"gives ({len(trained)} vs {len(kw['vocab'])}); use its own config")
    memory, source = build_memory(segmenter, kw["scenes"], kw["text_emb"], mem_cfg,
                                  cfg.data_root, progress)
    attach_memory(weights, memory, source, out)
    logger.info("instance memory (%d entries) stored in %s", len(memory), out or weights)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``folk-train``."""
    ap = argparse.ArgumentParser(prog="folk-train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="YAML/JSON with train/student/vl sections")
    ap.add_argument("--resume", action="store_true", help="continue from <out_dir>/ckpt_last.pt")
    ap.add_argument("--out-dir", default=None, help="override train.out_dir")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--memory-only", metavar="WEIGHTS", default=None,
                    help="train nothing: build the instance memory of these weights")
    ap.add_argument("--memory-out", metavar="OUT", default=None,
                    help="with --memory-only: write here instead of over WEIGHTS")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from folk_model.train.train import train

    try:
        cfg, student_cfg, vl_cfg, mem_cfg = read_config(args.config)
        if args.out_dir:
            cfg.out_dir = args.out_dir
        if args.memory_only:
            return memory_only(cfg, vl_cfg, mem_cfg, args.memory_only, args.memory_out,
                               progress=not args.quiet)
        kw = prepare(cfg, vl_cfg, student_cfg)
        res = train(cfg, student_cfg, resume=args.resume, progress=not args.quiet,
                    vl_cfg=vl_cfg, memory_cfg=mem_cfg, **kw)
    except (FileNotFoundError, ValueError) as exc:
        logger.error("%s", exc)
        return 2
    if res.weights is not None:
        logger.info("weights: %s; curves: %s", res.weights, res.out_dir / "curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
