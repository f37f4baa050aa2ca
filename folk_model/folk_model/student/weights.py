"""Student weights on disk: a torch file plus a JSON manifest beside it.

``<name>.pt`` holds ``{"format": "folk-student", "manifest": {...}, "state_dict": {...}}``;
``<name>.json`` is the same manifest, readable without torch. Manifest keys:

- ``encoder``: {"backend", "model", "dim"} of the VL space the embeddings live in;
- ``student``: the full StudentConfig (voxel size, widths, thresholds, and the calibrated
  ``label_temperature`` of the label scores);
- ``calibration``: how ``label_temperature`` was fitted (``folk-calibrate --write``: rooms,
  instances, ECE before / after); absent when it never was;
- ``training``: classes, novel classes, data, epochs (free-form, from folk-train);
- ``metrics``: measured figures (free-form); ``code_version``: folk_model version (+ git);
- ``memory``: the instance memory's MemoryConfig plus ``size`` and ``built_from`` (absent: the
  file has no memory; its tensors are ``memory_keys`` / ``memory_values`` in the .pt);
- ``format_version``, ``created``.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import subprocess
from pathlib import Path
from typing import Any

import torch

from folk_model.config import MemoryConfig, StudentConfig, from_dict, to_dict
from folk_model.student.inference import StudentSegmenter
from folk_model.student.memory import InstanceMemory
from folk_model.student.model import TRAINING_ONLY_PREFIXES, FolkStudent

logger = logging.getLogger(__name__)

FORMAT = "folk-student"
FORMAT_VERSION = 1
ENCODER_KEYS = ("backend", "model", "dim")


class WeightsError(RuntimeError):
    """Student weights cannot be used: missing, corrupt, or made for another VL encoder."""


def code_version() -> str:
    """folk_model's package version, plus the git commit when run from a checkout."""
    try:
        from importlib.metadata import version

        ver = version("folk_model")
    except Exception:  # metadata missing in odd installs
        ver = "unknown"
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
            capture_output=True, text=True, timeout=5, check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{ver}+g{sha}" if sha else ver


def manifest_path(path: str | Path) -> Path:
    """The JSON manifest path beside a weights file."""
    return Path(path).with_suffix(".json")


def save_weights(
    path: str | Path,
    model: FolkStudent | StudentSegmenter,
    encoder_info: dict[str, Any],
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    half: bool = False,
    memory: InstanceMemory | None = None,
    memory_source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``path`` (.pt) and its manifest (.json); returns the manifest.

    Args:
        model: the network or a segmenter wrapping it (its ``cfg`` goes into the manifest).
        encoder_info: ``VLEncoder.info()`` of the encoder whose space the embeddings target.
        training / metrics: free-form dicts recorded in the manifest.
        half: store floating tensors as float16 (halves the file; loaded back as float32).
        memory: an instance memory to store (default: the segmenter's, if ``model`` is one);
            ``memory_source`` says what it was built from (manifest ``memory.built_from``).
    """
    net = model.model if isinstance(model, StudentSegmenter) else model
    if memory is None and isinstance(model, StudentSegmenter):
        memory = model.memory
    missing = [k for k in ENCODER_KEYS if k not in encoder_info]
    if missing:
        raise ValueError(f"encoder_info lacks {missing}; pass VLEncoder.info()")
    if int(encoder_info["dim"]) != int(net.cfg.embed_dim):
        raise ValueError(
            f"encoder dim {encoder_info['dim']} != student embed_dim {net.cfg.embed_dim}"
        )
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "encoder": dict(encoder_info),
        "student": to_dict(net.cfg),
        "training": training or {},
        "metrics": metrics or {},
        "code_version": code_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    state = {
        k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
        for k, v in net.state_dict().items()
    }
    blob: dict[str, Any] = {"format": FORMAT, "manifest": manifest, "state_dict": state}
    if memory is not None:
        _put_memory(blob, memory, memory_source)
    p = Path(path)
    _write_blob(blob, p)
    logger.info("saved student weights to %s (%.1f MB)", p, p.stat().st_size / 1e6)
    return manifest


# The parts of the network each manifest record was measured on: a record no longer holds
# once one of its parts is retrained (the calibration and the memory are made of naming-head
# outputs; the proposal sweep of foreground, offset, feature and score outputs).
NAMING_PARTS = ("backbone.", "embed_head.")
PROPOSAL_PARTS = ("backbone.", "fg_head.", "offset_head.", "feat_head.", "score_head.")
RECORD_PARTS = {"calibration": NAMING_PARTS, "memory": NAMING_PARTS,
                "memory_sweep": NAMING_PARTS, "proposal_sweep": PROPOSAL_PARTS}
# the proposal settings bench/sweep_proposals.py sweeps (its grid's keys, in this order)
SWEPT_PROPOSAL_FIELDS = ("fg_threshold", "cluster_radius", "dual_set", "unshifted_adjacency",
                         "nms_iou", "min_score", "split_max_cos", "split_min_score")
# the StudentConfig fields a record's writer stored (folk-calibrate --write; the proposal
# sweep's --write, with the test-time turns it swept at): a refit that keeps the record keeps
# these from the init file, whatever the refit's own config says
RECORD_FIELDS = {"calibration": ("label_temperature", "label_score_map",
                                 "label_score_map_new_word", "label_known_words",
                                 "label_known_word_handicap"),
                 "proposal_sweep": (*SWEPT_PROPOSAL_FIELDS, "tta_rotations")}


def touches(prefixes: tuple[str, ...] | list[str], parts: tuple[str, ...]) -> bool:
    """Whether parameters named by ``prefixes`` overlap ``parts`` (either may be the finer)."""
    return any(p.startswith(q) or q.startswith(p) for p in prefixes for q in parts)


def save_refit(
    path: str | Path,
    model: FolkStudent | StudentSegmenter,
    init_path: str | Path,
    trained: tuple[str, ...] | list[str],
    training: dict[str, Any],
    memory: InstanceMemory | None = None,
    memory_source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a refit of part of a network: the file ``init_path`` with the parameters under
    the ``trained`` prefixes taken from ``model``; returns the manifest.

    Why not ``save_weights``: a refit of the proposal heads leaves the naming head, and so the
    init file's calibration, instance memory and memory sweep, exactly as they were; a fresh
    manifest would lose them. Records whose parts were retrained (``RECORD_PARTS``) are
    dropped, the memory replaced by ``memory`` when one is given; ``training["refit"]`` names
    the init file, the trained prefixes and what was kept and dropped. The StudentConfig
    fields of a kept record (``RECORD_FIELDS``: the label temperature and score maps, the
    swept proposal settings) are the init file's too: the refit's config cannot know what the
    init file was calibrated or swept to.
    """
    net = model.model if isinstance(model, StudentSegmenter) else model
    init = Path(init_path)
    blob = _read_blob(init)
    man = blob["manifest"]
    state = dict(blob["state_dict"])
    new = net.state_dict()
    changed = [k for k in new if k.startswith(tuple(trained))]
    if not changed:
        raise ValueError(f"no parameter of the network starts with {list(trained)}")
    for k in changed:
        state[k] = new[k].detach().cpu()
    dropped = [r for r, parts in RECORD_PARTS.items() if r in man and touches(trained, parts)]
    kept = [r for r in RECORD_PARTS if r in man and r not in dropped]
    for r in dropped:
        man.pop(r)
        if r == "memory":
            blob.pop("memory_keys", None)
            blob.pop("memory_values", None)
    student = to_dict(net.cfg)
    for r in kept:
        student.update({f: man["student"][f] for f in RECORD_FIELDS.get(r, ())
                        if f in man.get("student", {})})
    man.update(
        student=student, code_version=code_version(),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        training={**training, "refit": {
            "init_weights": str(init), "init_created": man.get("created"),
            "init_training": man.get("training", {}), "trained": list(trained),
            "kept": kept, "dropped": dropped}})
    blob["state_dict"] = state
    if memory is not None:
        _put_memory(blob, memory, memory_source)
    p = Path(path)
    _write_blob(blob, p)
    logger.info("saved a refit of %s (%s) to %s; kept %s, dropped %s", init, list(trained), p,
                kept, dropped)
    return man


def _put_memory(blob: dict[str, Any], memory: InstanceMemory,
                source: dict[str, Any] | None) -> None:
    """Store ``memory`` in a weights blob (tensors + manifest entry)."""
    dim = int(blob["manifest"]["student"]["embed_dim"])
    if memory.dim != dim:
        raise ValueError(f"memory dim {memory.dim} != student embed_dim {dim}")
    blob["manifest"]["memory"] = {**to_dict(memory.cfg), "size": len(memory),
                                  "built_from": source or {}}
    # float16 either way: unit vectors lose nothing that moves a neighbour ranking
    blob["memory_keys"] = memory.keys.detach().cpu().half()
    blob["memory_values"] = memory.values.detach().cpu().half()


def _write_blob(blob: dict[str, Any], out: Path) -> None:
    """Write a weights blob atomically, and its manifest beside it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(out)
    manifest_path(out).write_text(json.dumps(blob["manifest"], indent=2) + "\n")


def check_encoder(manifest: dict[str, Any], expect: dict[str, Any], path: Path) -> None:
    """Raise WeightsError unless the manifest's encoder matches ``expect`` on backend,
    model and dim (keys absent from ``expect`` are not checked)."""
    got = manifest.get("encoder", {})
    diffs = [
        f"{k}: weights {got.get(k)!r} vs encoder {expect[k]!r}"
        for k in ENCODER_KEYS
        if k in expect and str(got.get(k)) != str(expect[k])
    ]
    if diffs:
        raise WeightsError(
            f"{path} was trained for another VL text encoder ({'; '.join(diffs)}). "
            "Use weights trained for this encoder, or configure the encoder the weights "
            f"expect: backend={got.get('backend')!r}, model={got.get('model')!r}, "
            f"dim={got.get('dim')!r}{_open_clip_hint(got)}."
        )


def _open_clip_hint(enc: dict[str, Any]) -> str:
    """How an open_clip encoder identity ("<name>/<tag>") maps onto VLConfig fields."""
    if enc.get("backend") != "open_clip" or "/" not in str(enc.get("model", "")):
        return ""
    name, tag = str(enc["model"]).split("/", 1)
    if tag == "random":
        how = "pretrained '' (random weights)"
    elif "@" in tag:
        how = f"pretrained: the path of the checkpoint file {tag.rsplit('@', 1)[0]!r} it was " \
              "trained with (same contents)"
    else:
        how = f"pretrained {tag!r}"
    return f" (in VLConfig: backend 'open_clip', model {name!r}, {how})"


def load_weights(
    path: str | Path,
    device: str = "cpu",
    expect: dict[str, Any] | None = None,
) -> tuple[StudentSegmenter, dict[str, Any]]:
    """Load student weights and return (segmenter on ``device``, manifest).

    Args:
        path: the .pt file written by :func:`save_weights`.
        device: torch device for inference.
        expect: ``VLEncoder.info()`` of the text encoder that will label the embeddings;
            a mismatch in backend, model or dim raises WeightsError.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsError(
            f"student weights not found: {p}. Train them with folk-train or point the "
            "weights parameter at an existing .pt file."
        )
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for bad files
        raise WeightsError(f"{p} is not a readable student weights file ({exc}); "
                           "re-download or re-train it") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT or "state_dict" not in blob:
        raise WeightsError(f"{p} is not a folk student weights file (format tag missing)")
    manifest = blob.get("manifest") or {}
    if int(manifest.get("format_version", -1)) > FORMAT_VERSION:
        raise WeightsError(f"{p} has format_version {manifest.get('format_version')}; this "
                           f"code reads up to {FORMAT_VERSION}: update folk_model")
    if expect is not None:
        check_encoder(manifest, expect, p)
    try:
        cfg = from_dict(StudentConfig, manifest["student"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{p}: manifest student config unusable ({exc})") from exc
    model = FolkStudent(cfg)
    state = {k: (v.float() if v.is_floating_point() else v)
             for k, v in blob["state_dict"].items()}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise WeightsError(f"{p}: tensors do not fit the student architecture ({exc})") from exc
    missing = [k for k in missing if not k.startswith(TRAINING_ONLY_PREFIXES)]
    if missing or unexpected:
        raise WeightsError(f"{p}: tensors do not fit the student architecture (missing "
                           f"{missing[:5]}, unexpected {unexpected[:5]})")
    cfg.device = str(device)
    return StudentSegmenter(model, cfg, device=device, memory=_load_memory(blob, manifest, p)), \
        manifest


def _load_memory(blob: dict[str, Any], manifest: dict[str, Any], p: Path) -> InstanceMemory | None:
    """The instance memory stored in a weights blob, or None when it has none."""
    if "memory" not in manifest and "memory_keys" not in blob:
        return None
    try:
        meta = {k: v for k, v in manifest["memory"].items() if k not in ("size", "built_from")}
        cfg = from_dict(MemoryConfig, meta)
        mem = InstanceMemory(blob["memory_keys"].float(), blob["memory_values"].float(), cfg)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise WeightsError(f"{p}: instance memory unusable ({exc}); rebuild it with "
                           "folk-train --memory-only") from exc
    if mem.dim != int(manifest["student"].get("embed_dim", mem.dim)):
        raise WeightsError(f"{p}: memory dim {mem.dim} != student embed_dim")
    return mem


def update_manifest(src: str | Path, dst: str | Path | None = None,
                    **fields: Any) -> dict[str, Any]:
    """Copy weights ``src`` to ``dst`` (default: in place) with manifest keys replaced by
    ``fields`` (e.g. ``metrics={...}``); writes the .pt and its .json; returns the manifest."""
    p = Path(src)
    out = Path(dst) if dst is not None else p
    blob = _read_blob(p)
    blob["manifest"].update(fields)
    _write_blob(blob, out)
    return blob["manifest"]


def attach_memory(src: str | Path, memory: InstanceMemory, source: dict[str, Any] | None = None,
                  dst: str | Path | None = None) -> dict[str, Any]:
    """Copy weights ``src`` to ``dst`` (default: in place) with ``memory`` as its instance
    memory (replacing any it had); writes the .pt and its .json; returns the manifest."""
    p = Path(src)
    blob = _read_blob(p)
    _put_memory(blob, memory, source)
    _write_blob(blob, Path(dst) if dst is not None else p)
    return blob["manifest"]


def _read_blob(p: Path) -> dict[str, Any]:
    blob = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise WeightsError(f"{p} is not a folk student weights file")
    return blob
