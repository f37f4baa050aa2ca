"""All configuration of folk_model, in one typed place.

One dataclass per component; every field carries a comment. Configs load from YAML or JSON
files (``load_config``) and are written beside every artefact they produce (``save_config``),
so that a result can always be traced to the settings that made it. Unknown keys are an error,
not silently ignored: a typo in a config file must fail loudly.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

CONFIG_VERSION = 1


# --------------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------------
@dataclass
class SynthConfig:
    """Synthetic ScanNet-layout scene generator (``folk-synth``)."""

    width: int = 640  # image width in pixels
    height: int = 480  # image height in pixels
    fx: float = 577.87  # focal length x in pixels (ScanNet's colour camera, scaled to 640x480)
    fy: float = 577.87  # focal length y in pixels
    num_frames: int = 50  # frames per scene (30..100)
    min_objects: int = 10  # fewest furniture objects per room
    max_objects: int = 30  # most furniture objects per room
    camera_height: tuple[float, float] = (0.5, 1.6)  # camera height range in metres
    depth_noise: bool = True  # add sensor-like depth noise and holes
    max_depth: float = 6.0  # depth beyond this is dropped (metres)
    scan_voxel: float = 0.02  # voxel size of the fused scene point cloud (metres)
    # model pool (catalog.split_models): "train", "dev" (rooms for choosing settings) or "test"
    # (meshes no training or development run sees; for reporting only)
    split: str = "train"
    jpeg_quality: int = 90  # colour JPEG quality
    # also write <scene>_fused.ply / _fused_gt.txt: the noisy frames of a partial path with
    # drifting poses fused by the node's VoxelMap, GT carried from the scan (what the node sees)
    fused_map: bool = True
    cache_dir: str = ""  # converted furniture meshes; "" = ~/.cache/folk/sh3d


# --------------------------------------------------------------------------------------------
# Vision-language encoders
# --------------------------------------------------------------------------------------------
@dataclass
class VLConfig:
    """A vision-language encoder: crops and texts into one unit-vector space."""

    backend: str = "offline"  # "offline" (ConSE: EfficientNet-Lite + MiniLM) or "open_clip"
    model: str = "tf_efficientnet_lite0"  # offline: image classifier; open_clip: model name
    pretrained: str = ""  # open_clip: pretrained tag ("openai") or a local checkpoint path
    template: str = "{}"  # prompt template for texts; "{}" is replaced by the label
    top_t: int = 10  # offline backend: ImageNet classes mixed per image (ConSE's T)
    device: str = "cpu"  # torch device for the encoders
    batch_size: int = 32  # crops per forward pass
    cache_dir: str = ""  # text-embedding cache folder; "" = ~/.cache/folk/text
    image_size: int = 0  # open_clip: force the image input size (0 = model's own; tests use 64)


# --------------------------------------------------------------------------------------------
# Teacher
# --------------------------------------------------------------------------------------------
@dataclass
class TeacherConfig:
    """The 2D teacher: multi-view, multi-scale crops of each 3D instance."""

    top_k_views: int = 5  # views kept per instance, ranked by visible points
    min_visible_points: int = 20  # a view needs this many visible points to count
    depth_tolerance: float = 0.05  # |projected depth - sensor depth| below this is visible (m)
    min_view_angle_deg: float = 15.0  # drop a view whose rotation is this close to a kept one
    # crop scales around the mask's box; tight crops measured best with the offline encoder
    # (docs/results/teacher.md: (1.0, 1.1) 41.7% vs (1.1, 1.5, 2.0) 37.1% top-1 on val)
    scales: tuple[float, ...] = (1.0, 1.1)
    min_crop_px: int = 24  # crops smaller than this (longest side) are skipped
    mask_dilate_px: int = 5  # dilation completing sparse projected masks (pixels)
    frame_stride: int = 1  # use every n-th frame


# --------------------------------------------------------------------------------------------
# Student
# --------------------------------------------------------------------------------------------
# StudentConfig.tta_rotations: the turns about z that map the voxel grid onto itself
TTA_ROTATIONS = (1, 2, 4)
# What the node runs on a CUDA device unless told otherwise: 4 turns gained 3-5 AP50 on
# noisy maps and resampled meshes (dev rooms; test fused maps 58.8 -> 62.2) at 2.9x the
# network time, which a GPU absorbs and 2 CPU cores do not (docs/results/world.md, s19)
TTA_ROTATIONS_CUDA = 4


@dataclass
class StudentConfig:
    """The 3D student: sparse UNet, instance proposals, embedding head."""

    voxel_size: float = 0.02  # metres; 2 cm as usual for ScanNet
    in_channels: int = 6  # rgb + xyz (normalised)
    channels: tuple[int, ...] = (32, 48, 64, 96)  # UNet width per level
    embed_dim: int = 384  # output embedding dimension (the VL space's D)
    head_hidden: int = 256  # hidden width of the embedding head
    fg_threshold: float = 0.5  # points above this foreground score are clustered
    cluster_radius: float = 0.04  # shifted-point clustering radius (metres)
    min_instance_points: int = 50  # proposals smaller than this are dropped
    # points above this are randomly subsampled at inference (and the rest are left out of
    # every instance: the network's cost follows the voxels, so keep this high)
    max_points: int = 2_000_000
    device: str = "cpu"  # "cpu", "cuda", "cuda:1", ...
    feat_dim: int = 64  # per-voxel feature width pooled by the instance score/embedding heads
    dual_set: bool = True  # also cluster the original (unshifted) foreground voxels (PointGroup)
    # how the unshifted set groups: False, a grid of cluster_radius over voxel centroids (a
    # centroid lies anywhere in its voxel, so a grid finer than the voxel cuts objects into
    # slabs where points happen to fall: with 3.5 cm cells on 4 cm voxels, 13 confident
    # proposals for 6 objects on the test suite's room); True, voxels that touch (26
    # neighbours on the integer voxel grid), which no position or density can cut
    unshifted_adjacency: bool = False
    nms_iou: float = 0.5  # proposals overlapping a higher-scored one above this IoU are dropped
    min_score: float = 0.05  # proposals scored below this are dropped
    # heights measured from an estimated floor plane (student/floor.py), in training and at
    # inference: a floor at another height or tilted by a few degrees looks the same
    floor_frame: bool = True
    # voxels on the room's bounding planes (floor, walls, ceiling; RANSAC) are background
    # whatever the network says, so that no proposal can swallow them (needs floor_frame)
    structure_prior: bool = True
    # the prior's walls: refit each RANSAC wall's direction to its own points before judging
    # it (student/floor.py _refine_structural); without, a noisy map's three-point normals
    # were off by degrees and whole walls were rejected
    structure_refine: bool = False
    # metres beyond a candidate wall where a point counts as outside the room (a wall bounds
    # the room when almost nothing lies there: floor.py _bounds_room); None = structure_mask's
    # own default, twice its inlier distance (0.1 m); a noisy map's wall is itself thicker
    structure_outside_gap: float | None = None
    # test-time rotations about the vertical axis whose foreground probabilities and centre
    # offsets are averaged before grouping: 1 (off), 2 (0 and 180 deg) or 4 (every 90 deg);
    # these turns map the voxel grid onto itself, so every pass sees the same voxels and only
    # the network's view of them changes. Costs one network pass each (scores and embeddings
    # come from the unturned pass)
    tta_rotations: int = 1  # one of TTA_ROTATIONS
    # with a known floor height (segment(..., floor_z=)), a floor estimate this far above it
    # is a furniture top filling the view (a camera over a table): the network, trained on
    # rooms with floors, takes such a top for floor and predicts background, so the top's
    # connected parts become proposals of their own
    top_min_height: float = 0.3
    # such a top's proposal score: the score head has never seen a top without a floor in
    # view and gave these 0.01-0.14 on dev close-ups, under min_score; geometry, not the
    # network, proposes them, so they get this neutral score
    top_score: float = 0.5
    # with no known floor, a view in which the 98th percentile of heights above the estimated
    # floor is under this many metres is a view over a furniture top (a manipulator's camera
    # over a table: no wall or tall furniture in it, while every room and every frame of one
    # has them), and that "floor" is proposed as with a known floor (top_sets). 0 = off
    top_max_rise: float = 0.0
    # objects resting on a proposal's flat top (a telephone on a desk) split off as proposals
    # of their own (student.proposals.split_resting): on in the demo weights since session 24
    # (test rooms: class-agnostic AP50 +5 to +18 on every robustness variant, but more kept
    # proposals that are not objects); False here so that a new config opts in
    split_resting: bool = False
    # a gate on those parts, once the heads have scored and embedded them: a part goes back
    # to its host when the cosine between their embeddings is at least split_max_cos (None =
    # never) or its score is under split_min_score. On dev rooms most split parts that are no
    # object are pieces of their host (a pillow, a headboard, a tv's screen above its stand),
    # closer to it in the embedding and scored lower than parts that are objects of their own.
    # Off in the demo weights: 0.6 gained 3 AP50 on dev rooms but put a real desk's monitor
    # back into the desk (PCL's office frame; docs/results/world.md, session 25)
    split_max_cos: float | None = None
    split_min_score: float = 0.0
    # softmax temperature of the label scores (labelling.label_embeddings): fitted on dev rooms
    # by the calibration tool (folk-calibrate --write), so that a score of 0.9 is right about
    # 9 times in 10; stored with the weights because StudentConfig is in their manifest
    label_temperature: float = 0.01
    # Platt map of those scores, (a, b): a score s is reported as sigmoid(a logit(s) + b);
    # one temperature could not make the scores monotone in accuracy (memory hits read too
    # sure, weak head matches too unsure: docs/results/world.md); folk-calibrate fits a and b
    # after T on the same dev instances. (1, 0) = the softmax score itself.
    label_score_map: tuple[float, float] = (1.0, 0.0)
    # a second Platt map for labels whose word is not one of label_known_words (the classes
    # the weights trained on, as folk-calibrate --by-word writes them): on dev rooms a new
    # word was right far more often than its score said and a training word less often
    # (labelling.word_score_maps). None = label_score_map for every word
    label_score_map_new_word: tuple[float, float] | None = None
    # the classes the weights trained on, as folk-calibrate writes them (for the new-word map
    # and the handicap below); empty = every word is treated alike
    label_known_words: tuple[str, ...] = ()
    # subtracted from the cosine of each of label_known_words before words are ranked and
    # scored (labelling.word_biases, calibrated stacking): the label loss pulls embeddings
    # towards training words, so a class never trained on loses to them; chosen on dev rooms
    # by folk-calibrate --handicap choose. 0 = off, as in the demo weights: 0.035 gained 10
    # points on new words across dev meshes and none on the test rooms, whose new-word
    # misses are far from near-ties (docs/results/world.md, session 24)
    label_known_word_handicap: float = 0.0


@dataclass
class MemoryConfig:
    """The student's instance memory (``folk_model.student.memory``), built after training.

    Keys are the student's own embeddings of the training instances; values are what those
    instances should be named by: label text + teacher target for a labelled instance, the
    label-free teacher target for an unlabelled (novel) one. At inference an instance's
    embedding becomes the similarity-weighted mean of the values of its ``k`` nearest keys,
    blended with its own. It corrects the embedding head where its error exceeds the margins
    between words (sofa / bed): the neighbours are right more often than the head's direction.
    """

    k: int = 0  # neighbours per instance; 0 = build no memory
    temperature: float = 0.02  # softmax temperature over the neighbours' key similarities
    blend: float = 0.0  # weight of the instance's own embedding (1 = memory ignored)
    min_points: int = 100  # training instances with fewer points are not stored
    # a lookup of known objects: an instance whose nearest key is less similar than this
    # keeps the embedding head's own output (an object unlike every training instance is
    # named from its own embedding, not from the nearest stranger); -1 = always look up
    min_similarity: float = -1.0


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    """Label-guided distillation (``folk-train``)."""

    data_root: str = "data/synth"  # ScanNet-layout scenes
    teacher_dir: str = ""  # teacher outputs; "" = <data_root>/teacher
    out_dir: str = "runs/student"  # checkpoints, curves, config
    novel_classes: tuple[str, ...] = ()  # classes held out from distillation and supervision
    epochs: int = 40  # passes over the training scenes
    lr: float = 2e-3  # AdamW learning rate
    weight_decay: float = 1e-4  # AdamW weight decay
    batch_scenes: int = 1  # scenes per step
    crop_points: int = 120_000  # random room crop size per training sample (points)
    w_distill: float = 1.0  # weight of the distillation loss
    w_label: float = 0.5  # weight of the label-supervision loss
    w_proposal: float = 1.0  # weight of the proposal losses
    temperature: float = 0.07  # softmax temperature of the label-supervision loss
    seed: int = 0  # random seed
    num_workers: int = 0  # data loader workers
    device: str = "cpu"  # torch device
    train_split: str = "train"  # split file (splits/<name>.txt) with the training scenes
    steps_per_epoch: int = 0  # training samples per epoch; 0 = one per training scene
    stuff_classes: tuple[str, ...] = ("wall", "floor", "ceiling")  # background, not instances
    consistency_fallback: str = "best_view"  # no consistent view: "best_view", "text", "drop"
    # instances without a training label (novel or unannotated classes): "consensus" = a
    # label-free target from the views that agree with each other (no class name used);
    # "none" = no distillation target at all (the strict hold-out)
    unlabelled_targets: str = "consensus"
    # views this close to the all-view mean form the consensus (0.7: best of 0.5..0.9 on
    # data/synth train; the choice moves novel top-1 by 3 points at most)
    consensus_min_cos: float = 0.7
    # dense distillation: every voxel of an annotated instance is also pulled towards the
    # instance's target and label (weight of those terms, relative to the instance terms)
    w_dense: float = 1.0
    dense_voxels_per_instance: int = 128  # voxels sampled per instance for the dense terms
    # relational distillation: teacher and student compared by their similarity distributions
    # over a generic concept vocabulary (folk_model.vl.concepts; "" = off)
    concepts: str = "imagenet1k"
    w_relational: float = 1.0  # weight of the relational term (instance and dense)
    # drop concept words that name a novel class ("table lamp" for "lamp"): the stricter
    # protocol, for checking that the generic word list does not carry the held-out names
    concepts_drop_novel: bool = False
    # softmax temperature over concept similarities (0.05: teacher perplexity ~4 concepts)
    relational_temperature: float = 0.05
    # no-drift hinge (losses.no_drift_loss): an instance may not get more similar to another
    # training label than its teacher target is; 0 = off (a fine-tune with 1.0 lowered novel
    # AP50 16.6 -> 15.6 on 120 rooms: docs/results/student.md)
    w_no_drift: float = 0.0
    # anchor to the starting network (init_weights): a frozen copy of it runs on the same
    # voxels, and each GT instance's embedding is pulled towards the frozen one's by the
    # cosine and relational terms, this weight. Every fine-tune of the shipped network
    # without it lost novel words (docs/results/world.md, sessions 16-25). 0 = off
    w_anchor: float = 0.0
    proposal_warmup_epochs: int = 2  # epochs before predicted proposals train the score head
    checkpoint_every: int = 1  # save a checkpoint every n epochs (and always at the end)
    max_scenes: int = 0  # use at most this many training scenes; 0 = all
    init_weights: str = ""  # start from these student weights (.pt), e.g. a first stage
    # train only the parameters whose names start with one of these (e.g. "embed_head."),
    # the rest frozen with their batch norms in eval mode; () = all. A refit of the naming
    # head on frozen features leaves every proposal, and so class-agnostic AP, unchanged
    train_only: tuple[str, ...] = ()
    # --- a change of world (train.train.augment_world): what other rooms, sensors and maps do
    fused_map_p: float = 0.5  # share of samples drawn from the scene's fused map (node's view)
    # other worlds of the room (train.worlds, cached beside each scene): a share of samples
    # from its map fused through a noisier depth sensor, and from its meshes sampled evenly
    # (hidden surfaces too); the rest are the scan itself. 0 = not built, not used.
    noisy_map_p: float = 0.0
    mesh_sampled_p: float = 0.0
    # a share of samples that are one close-up depth frame over a table top (train.worlds):
    # the floor estimate then finds the top, as at inference on such a frame
    close_up_p: float = 0.0
    close_up_views: int = 6  # close-up frames made (and cached) per training room
    mesh_spacing: tuple[float, float] = (0.015, 0.045)  # mesh samples this far apart (m)
    noisy_map_noise: tuple[float, float] = (0.5, 2.5)  # k: k x the sensor's noise added again
    noisy_map_holes: tuple[float, float] = (0.0, 0.15)  # share of depth pixels lost
    augment_world: bool = True  # the augmentations below; False = crop, rotate, jitter only
    aug_tilt_deg: float = 4.0  # gravity tilt up to this (the floor frame must undo it)
    aug_z_shift: float = 0.6  # floor height moved by up to +- this (metres)
    aug_sparse_structure_p: float = 0.25  # floor/walls thinned to 0.1-30% (coarse mesh vertices)
    aug_density_p: float = 0.3  # every point kept with probability 25-100%
    aug_slab_p: float = 0.2  # the floor gets an underside 5-30 cm below (a slab)
    aug_gray_p: float = 0.15  # colour removed
    aug_jitter: float = 0.005  # point jitter, sigma up to this (metres)
    # each object of a crop, with this probability, scaled about its base centre by factors
    # in [1 - aug_object_scale, 1 + aug_object_scale] (x/y and z drawn apart) and recoloured
    # by per-channel gains in [1 - aug_object_color, 1 + aug_object_color] plus an offset:
    # the student names objects on its training meshes far better than others (dev: 76% vs
    # 51% top-1 on GT masks), and every other augmentation acts on the whole crop. 0 = off:
    # it helped a fine-tune but the recipe from scratch with it named novel words worse
    # (docs/results/world.md, session 25)
    aug_object_p: float = 0.0
    aug_object_scale: float = 0.2
    aug_object_color: float = 0.3


# --------------------------------------------------------------------------------------------
# Fusion (used by the ROS node, but ROS-free)
# --------------------------------------------------------------------------------------------
@dataclass
class FusionConfig:
    """Posed RGB-D frames into a bounded, voxelised coloured map."""

    voxel_size: float = 0.02  # map voxel size (metres)
    min_depth: float = 0.2  # depth below this is ignored (metres)
    max_depth: float = 4.0  # depth beyond this is ignored (metres)
    pixel_stride: int = 2  # use every n-th pixel in each direction
    max_voxels: int = 400_000  # memory bound: the map never holds more voxels
    keyframe_translation: float = 0.05  # a frame is fused only after this much motion (m)
    keyframe_rotation_deg: float = 5.0  # ... or this much rotation (degrees)


# --------------------------------------------------------------------------------------------
# Loading and saving
# --------------------------------------------------------------------------------------------
def _convert(tp: Any, value: Any) -> Any:
    """Convert a plain YAML/JSON value to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return from_dict(tp, value)
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v) for v in value)
        return tuple(_convert(a, v) for a, v in zip(args, value, strict=True))
    if origin in (typing.Union, types.UnionType):  # Optional[X]: X's conversion, or None
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return value if value is None or len(args) != 1 else _convert(args[0], value)
    if tp is float and isinstance(value, int):
        return float(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys raise ``ValueError``."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {unknown}; known: {sorted(names)}")
    kwargs = {k: _convert(hints[k], v) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass as a plain dict (tuples become lists) for YAML/JSON."""
    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def read_mapping(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a YAML/JSON config file (empty for an empty file)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    text = p.read_text()
    loaded = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        kind = type(loaded).__name__
        raise ValueError(f"{p}: expected a mapping at the top level, got {kind}")
    return loaded


def load_config(cls: type[T], path: str | Path | None = None, **overrides: Any) -> T:
    """Load ``cls`` from a YAML/JSON file (or defaults when ``path`` is None), then overrides."""
    data: dict[str, Any] = {} if path is None else dict(read_mapping(path))
    data.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(cls, data)


def save_config(path: str | Path, **sections: Any) -> None:
    """Write one or more configs (and plain values) as YAML, with the config version."""
    out: dict[str, Any] = {"config_version": CONFIG_VERSION}
    for name, value in sections.items():
        out[name] = to_dict(value) if dataclasses.is_dataclass(value) else value
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(yaml.safe_dump(out, sort_keys=False))


__all__ = [
    "CONFIG_VERSION",
    "FusionConfig",
    "StudentConfig",
    "SynthConfig",
    "TeacherConfig",
    "TrainConfig",
    "VLConfig",
    "field",
    "from_dict",
    "load_config",
    "save_config",
    "to_dict",
]
