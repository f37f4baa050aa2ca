"""Read a scene folder in ScanNet's export layout (real or synthetic) into a ``Scene``.

The layout is documented in ``folk_model.data.scene``. Real ScanNet exports differ from ours in
a few ways this loader accepts:

- ground truth: ``<name>_inst_gt.txt`` (benchmark format, ``label_id * 1000 + instance`` per
  vertex; also accepted as ``<name>.txt``, unless that file is ScanNet's scan info file,
  ``axisAlignment = ...``), or else ScanNet's raw annotation (``<name>.aggregation.json`` +
  ``<name>_vh_clean_2.0.010000.segs.json``) mapped to label ids through the label table; or
  no GT at all (all zeros). Instance ids are ``value % 1000`` when that is unambiguous, else
  (an instance number 0, as ScanNet200's preprocessing writes for segGroup id 0, or one number
  under two labels) every distinct nonzero value is one instance, as ScanNet's evaluator reads;
- label table: ``labels.tsv`` or ``scannetv2-labels.combined.tsv`` in the scene folder or the
  dataset root, either ``id<TAB>name`` lines or ScanNet's combined tsv (header with ``id`` and
  ``category`` / ``raw_category`` columns; its ``id`` column is ScanNet200's id space, so ids
  of the ScanNet200 classes take ScanNet200's names). Without any, the ids are ScanNet200's
  (``folk_model.data.scannet200``), what the ScanNet200 benchmark ground truth holds;
- a scene with no ``color/``, ``depth/`` and ``pose/`` at all (a mesh and its ground truth,
  as the benchmark's evaluation needs) loads with ``require_frames=False``: no frames;
- colour frames may have another size than depth frames (1296x968 vs 640x480);
- poses of frames where tracking failed hold ``-inf``: ``load_scene(skip_invalid_poses=True)``
  drops those frames with a warning; by default any invalid pose is an error.

Every error is a ``SceneError`` (a ``ValueError``) whose message names the offending file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from .scene import Scene

log = logging.getLogger(__name__)


class SceneError(ValueError):
    """A scene folder is missing a file or holds a file that cannot be used."""


# --------------------------------------------------------------------------------------------
# Small readers
# --------------------------------------------------------------------------------------------
def _read_matrix(path: Path, shape: tuple[int, int] = (4, 4)) -> np.ndarray:
    if not path.is_file():
        raise SceneError(f"missing file: {path}")
    try:
        M = np.array([[float(v) for v in line.split()] for line in path.read_text().splitlines()
                      if line.strip()], dtype=np.float64)
    except ValueError as e:
        raise SceneError(f"{path}: not a matrix of numbers ({e})") from e
    if M.shape != shape:
        raise SceneError(f"{path}: expected a {shape[0]}x{shape[1]} matrix, got shape {M.shape}")
    return M


def read_pose(path: Path) -> np.ndarray:
    """A camera-to-world 4x4; raises ``SceneError`` if it is not finite and rigid."""
    T = _read_matrix(path)
    if not np.all(np.isfinite(T)):
        raise SceneError(f"{path}: pose holds non-finite values (tracking lost?)")
    R = T[:3, :3]
    if (np.abs(R.T @ R - np.eye(3)).max() > 1e-3 or abs(np.linalg.det(R) - 1) > 1e-3
            or np.abs(T[3] - [0, 0, 0, 1]).max() > 1e-6):
        raise SceneError(f"{path}: pose is not a rigid transform (rotation not orthonormal or "
                         "last row not 0 0 0 1)")
    return T


def _image_size(path: Path) -> tuple[int, int]:
    if not path.is_file():
        raise SceneError(f"missing file: {path}")
    try:
        with Image.open(path) as im:
            return im.size
    except Exception as e:  # PIL raises several types for broken files
        raise SceneError(f"{path}: cannot read image ({e})") from e


def _frame_ids(folder: Path, suffix: str) -> set[int]:
    if not folder.is_dir():
        raise SceneError(f"missing folder: {folder}")
    out = set()
    for p in folder.iterdir():
        if p.suffix == suffix and p.stem.isdigit():
            out.add(int(p.stem))
    return out


def read_label_table(path: Path) -> dict[int, str]:
    """``id<TAB>name`` lines, or ScanNet's combined tsv with a header row (ids of ScanNet200's
    classes named as ScanNet200 names them, other ids by their ``category``)."""
    return _read_label_tables(path)[0]


def _read_label_tables(path: Path) -> tuple[dict[int, str], dict[str, int]]:
    """(id -> name, annotation label -> id) of a label table.

    The second map is what ScanNet's raw annotation (``segGroups[].label``) is read with: for
    the combined tsv its ``raw_category`` column (as ScanNet200's preprocessing maps labels),
    else the names.
    """
    from .scannet200 import label_table as scannet200_table

    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    if not lines:
        raise SceneError(f"{path}: empty label table")
    first = lines[0].split("\t")
    table: dict[int, str] = {}
    if not first[0].strip().lstrip("-").isdigit():  # a header row: ScanNet's combined tsv
        cols = [c.strip() for c in first]
        name_col = "category" if "category" in cols else "raw_category" if \
            "raw_category" in cols else None
        if "id" not in cols or name_col is None:
            raise SceneError(f"{path}: header must have 'id' and 'category' columns, got {cols}")
        ci, cn = cols.index("id"), cols.index(name_col)
        cr = cols.index("raw_category") if "raw_category" in cols else cn
        s200 = scannet200_table()
        raw: dict[str, int] = {}
        for ln in lines[1:]:
            f = ln.split("\t")
            if len(f) > max(ci, cn, cr) and f[ci].strip().isdigit():
                i = int(f[ci])
                table.setdefault(i, s200.get(i, f[cn].strip()))
                raw.setdefault(f[cr].strip(), i)
        return table, raw
    for k, ln in enumerate(lines, start=1):
        f = ln.split("\t")
        if len(f) < 2 or not f[0].strip().isdigit():
            raise SceneError(f"{path}:{k}: expected 'id<TAB>name', got {ln!r}")
        table[int(f[0])] = f[1].strip()
    return table, {v: k for k, v in table.items()}


LABEL_TABLE_NAMES = ("labels.tsv", "scannetv2-labels.combined.tsv")


def find_label_table(scene_dir: Path) -> Path | None:
    """The label table a scene uses: ``labels.tsv`` or ScanNet's combined tsv, in the scene
    folder first, then in the dataset root; None when there is none (ScanNet200 ids)."""
    for folder in (scene_dir, scene_dir.parent):
        for name in LABEL_TABLE_NAMES:
            if (folder / name).is_file():
                return folder / name
    return None


def read_ply(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices float32 [N, 3] and colours uint8 [N, 3] of a PLY (binary or ASCII).

    Faces and other elements after the vertices are ignored; missing colours read as grey.
    """
    if not path.is_file():
        raise SceneError(f"missing file: {path}")
    with open(path, "rb") as f:
        if f.readline().strip() != b"ply":
            raise SceneError(f"{path}: not a PLY file")
        fmt, n, props, in_vertex = None, None, [], False
        while True:
            line = f.readline()
            if not line:
                raise SceneError(f"{path}: PLY header has no end_header")
            t = line.decode("ascii", "replace").split()
            if not t:
                continue
            if t[0] == "format":
                fmt = t[1]
            elif t[0] == "element":
                in_vertex = t[1] == "vertex"
                if in_vertex:
                    n = int(t[2])
            elif t[0] == "property" and in_vertex:
                if t[1] == "list":
                    raise SceneError(f"{path}: list properties on vertices are not supported")
                props.append((t[2], t[1]))
            elif t[0] == "end_header":
                break
        if n is None:
            raise SceneError(f"{path}: PLY has no vertex element")
        types = {"float": "f4", "float32": "f4", "double": "f8", "float64": "f8", "uchar": "u1",
                 "uint8": "u1", "char": "i1", "int8": "i1", "ushort": "u2", "uint16": "u2",
                 "short": "i2", "int16": "i2", "uint": "u4", "uint32": "u4", "int": "i4",
                 "int32": "i4"}
        try:
            if fmt == "ascii":
                data = np.loadtxt(f, max_rows=n, ndmin=2)
                cols = {name: data[:, k] for k, (name, _) in enumerate(props)}
            else:
                end = "<" if fmt == "binary_little_endian" else ">"
                dt = np.dtype([(name, end + types[tp]) for name, tp in props])
                buf = f.read(dt.itemsize * n)
                if len(buf) < dt.itemsize * n:
                    raise SceneError(f"{path}: truncated, expected {n} vertices")
                rec = np.frombuffer(buf, dtype=dt, count=n)
                cols = {name: rec[name] for name, _ in props}
        except (KeyError, ValueError) as e:
            raise SceneError(f"{path}: cannot parse vertices ({e})") from e
    if not {"x", "y", "z"} <= set(cols):
        raise SceneError(f"{path}: vertices have no x, y, z")
    pts = np.stack([cols["x"], cols["y"], cols["z"]], 1).astype(np.float32)
    if {"red", "green", "blue"} <= set(cols):
        rgb = np.stack([cols["red"], cols["green"], cols["blue"]], 1).astype(np.uint8)
    else:
        rgb = np.full((n, 3), 128, np.uint8)
    return pts, rgb


def _is_scan_info(path: Path) -> bool:
    """Whether ``<scene>.txt`` is ScanNet's scan info file (``axisAlignment = ...``, one
    ``key = value`` a line) rather than benchmark ground truth (one integer a line)."""
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                return b"=" in line
    return False


def _split_benchmark_ids(gt: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex (instance id, label id) of benchmark values ``label_id * 1000 + instance``.

    ScanNet's evaluator takes each distinct value as one instance. ``value % 1000`` says the
    same (and keeps the file's instance numbers) unless a nonzero value has instance number 0
    or one number appears under two labels; then the distinct values are numbered 1..K.
    """
    inst = gt % 1000
    sem = gt // 1000
    vals = np.unique(gt[gt != 0])
    nums = vals % 1000
    if (nums == 0).any() or len(np.unique(nums)) != len(nums):
        log.info("%s: instance numbers repeat across labels or are 0; numbering the %d "
                 "distinct values as instances", path, len(vals))
        inst = np.zeros_like(gt)
        inst[gt != 0] = np.searchsorted(vals, gt[gt != 0]) + 1
    return inst.astype(np.int32), sem.astype(np.int32)


def _read_gt(scene_dir: Path, name: str, n: int, table: dict[int, str],
             by_label: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex (instance id, label id), from the benchmark txt or ScanNet's aggregation."""
    for p in (scene_dir / f"{name}_inst_gt.txt", scene_dir / f"{name}.txt"):
        if p.is_file():
            if p.name == f"{name}.txt" and _is_scan_info(p):
                continue  # ScanNet's scan meta data, not ground truth
            try:
                gt = np.loadtxt(p, dtype=np.int64, ndmin=1)
            except ValueError as e:
                raise SceneError(f"{p}: not one integer per line ({e})") from e
            if len(gt) != n:
                raise SceneError(f"{p}: {len(gt)} values but the scene cloud has {n} vertices")
            inst, sem = _split_benchmark_ids(gt, p)
            unknown = sorted(set(np.unique(sem[sem != 0]).tolist()) - set(table))
            if unknown:
                log.warning("%s: label id(s) %s are not in the label table; those points count "
                            "as unannotated (NYU40 ids of the 20-class benchmark? put a "
                            "labels.tsv 'id<TAB>name' in the dataset root)", p, unknown[:8])
            return inst, sem
    agg = scene_dir / f"{name}.aggregation.json"
    segs = scene_dir / f"{name}_vh_clean_2.0.010000.segs.json"
    if agg.is_file() and segs.is_file():
        seg_idx = np.asarray(json.loads(segs.read_text())["segIndices"], np.int64)
        if len(seg_idx) != n:
            raise SceneError(f"{segs}: {len(seg_idx)} segment indices but {n} vertices")
        inst = np.zeros(n, np.int32)
        sem = np.zeros(n, np.int32)
        for g in json.loads(agg.read_text())["segGroups"]:
            lab = by_label.get(g.get("label", ""), 0)
            if lab == 0:
                continue  # classes outside the label table stay unannotated
            m = np.isin(seg_idx, g["segments"])
            inst[m] = int(g.get("objectId", g.get("id", 0))) + 1
            sem[m] = lab
        return inst, sem
    log.info("%s: no ground truth found; all vertices unannotated", scene_dir)
    return np.zeros(n, np.int32), np.zeros(n, np.int32)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def load_scene(path: str | Path, skip_invalid_poses: bool = False,
               with_cloud: bool = True, require_frames: bool = True) -> Scene:
    """Read the scene folder ``path`` (frames stay on disk; read them with ``load_color`` ...).

    ``with_cloud=False`` reads only the frames' index, poses and intrinsics: for a recording
    that has no fused cloud or ground truth yet (the scene player). The cloud arrays are then
    empty.

    ``require_frames=False`` accepts a folder with none of ``color/``, ``depth/``, ``pose/``
    (the mesh and ground truth only, all that evaluating the student needs): the scene then
    has no frames (``frame_ids`` empty, ``poses`` [0, 4, 4], NaN intrinsics, sizes (0, 0)).

    Raises ``SceneError`` naming the file when a file is missing, unreadable, of the wrong size
    (first colour and depth frame are checked here, every frame when loaded) or a pose is corrupt.
    """
    root = Path(path)
    if not root.is_dir():
        raise SceneError(f"scene folder not found: {root}")
    name = root.name
    if not require_frames and not any((root / d).is_dir() for d in ("color", "depth", "pose")):
        return _cloud_only_scene(root, with_cloud)
    ids_c = _frame_ids(root / "color", ".jpg")
    ids_d = _frame_ids(root / "depth", ".png")
    ids_p = _frame_ids(root / "pose", ".txt")
    for ids, other, folder, ext in ((ids_c, ids_d | ids_p, "color", ".jpg"),
                                    (ids_d, ids_c | ids_p, "depth", ".png"),
                                    (ids_p, ids_c | ids_d, "pose", ".txt")):
        missing = sorted(other - ids)
        if missing:
            raise SceneError(f"missing file: {root / folder / f'{missing[0]}{ext}'} "
                             f"({len(missing)} frame(s) missing in {folder}/)")
    frame_ids = sorted(ids_c)
    if not frame_ids:
        raise SceneError(f"{root / 'color'}: no frames")

    poses, kept = [], []
    for i in frame_ids:
        try:
            poses.append(read_pose(root / "pose" / f"{i}.txt"))
            kept.append(i)
        except SceneError as e:
            if skip_invalid_poses and "non-finite" in str(e):
                log.warning("skipping frame %d: %s", i, e)
                continue
            raise
    if not kept:
        raise SceneError(f"{root / 'pose'}: no valid pose")
    frame_ids = kept
    K_c = _read_matrix(root / "intrinsic" / "intrinsic_color.txt")[:3, :3]
    kd = root / "intrinsic" / "intrinsic_depth.txt"
    K_d = _read_matrix(kd)[:3, :3] if kd.is_file() else K_c.copy()
    for K, p in ((K_c, root / "intrinsic" / "intrinsic_color.txt"), (K_d, kd)):
        if not (np.all(np.isfinite(K)) and K[0, 0] > 0 and K[1, 1] > 0):
            raise SceneError(f"{p}: invalid intrinsics (fx, fy must be positive)")

    color_size = _image_size(root / "color" / f"{frame_ids[0]}.jpg")
    depth_size = _image_size(root / "depth" / f"{frame_ids[0]}.png")

    table, points, colors, inst, sem, meta = _cloud_and_gt(root, with_cloud)
    return Scene(name=name, root=root, frame_ids=frame_ids, poses=np.stack(poses),
                 intrinsic_color=K_c, intrinsic_depth=K_d, color_size=color_size,
                 depth_size=depth_size, points=points, colors=colors, instance_ids=inst,
                 semantic_ids=sem, label_table=table, meta=meta)


def _cloud_and_gt(root: Path, with_cloud: bool) -> tuple[dict[int, str], np.ndarray, np.ndarray,
                                                           np.ndarray, np.ndarray, dict]:
    """(label table, points, colours, instance ids, label ids, meta) of a scene folder."""
    from .scannet200 import label_table as scannet200_table

    name = root.name
    tpath = find_label_table(root)
    if tpath is not None:
        table, by_label = _read_label_tables(tpath)
    else:  # the ScanNet200 benchmark's ids
        table = scannet200_table()
        by_label = {v: k for k, v in table.items()}
    if with_cloud:
        points, colors = read_ply(root / f"{name}_vh_clean_2.ply")
        inst, sem = _read_gt(root, name, len(points), table, by_label)
    else:
        points, colors = np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)
        inst, sem = np.zeros(0, np.int32), np.zeros(0, np.int32)
    meta_path = root / "meta.json"
    meta: dict = {}
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as e:
            raise SceneError(f"{meta_path}: invalid JSON ({e})") from e
    return table, points, colors, inst, sem, meta


def _cloud_only_scene(root: Path, with_cloud: bool) -> Scene:
    """A scene folder with the mesh (and ground truth) but no frames."""
    table, points, colors, inst, sem, meta = _cloud_and_gt(root, with_cloud)
    nan = np.full((3, 3), np.nan)
    return Scene(name=root.name, root=root, frame_ids=[], poses=np.zeros((0, 4, 4)),
                 intrinsic_color=nan, intrinsic_depth=nan.copy(), color_size=(0, 0),
                 depth_size=(0, 0), points=points, colors=colors, instance_ids=inst,
                 semantic_ids=sem, label_table=table, meta=meta)


def _open(path: Path, size: tuple[int, int]) -> Image.Image:
    if not path.is_file():
        raise SceneError(f"missing file: {path}")
    try:
        im = Image.open(path)
        im.load()
    except Exception as e:
        raise SceneError(f"{path}: cannot read image ({e})") from e
    if im.size != size:
        raise SceneError(f"{path}: image is {im.size[0]}x{im.size[1]}, the scene's frames are "
                         f"{size[0]}x{size[1]}")
    return im


def load_color(scene: Scene, frame_id: int) -> np.ndarray:
    """Colour frame as uint8 [H, W, 3] RGB."""
    return np.asarray(_open(scene.color_path(frame_id), scene.color_size).convert("RGB"))


def load_depth_raw(scene: Scene, frame_id: int) -> np.ndarray:
    """Depth frame as stored: integer [H, W] in units of 1 / ``scene.depth_scale`` metres, 0
    where there is no depth (what a ROS 16UC1 depth image carries)."""
    im = _open(scene.depth_path(frame_id), scene.depth_size)
    d = np.asarray(im)
    if d.dtype not in (np.uint16, np.int32, np.uint8) or d.ndim != 2:
        raise SceneError(f"{scene.depth_path(frame_id)}: expected a 16-bit single-channel PNG, "
                         f"got mode {im.mode}")
    return d


def load_depth(scene: Scene, frame_id: int) -> np.ndarray:
    """Depth frame as float32 [H, W] metres, 0 where there is no depth."""
    return load_depth_raw(scene, frame_id).astype(np.float32) / scene.depth_scale


def load_instance_image(scene: Scene, frame_id: int) -> np.ndarray:
    """Per-pixel instance ids (synthetic scenes only) as int32 [H, W], 0 = none."""
    im = _open(scene.instance_path(frame_id), scene.depth_size)
    return np.asarray(im).astype(np.int32)


def list_scenes(root: str | Path, split: str | None = None) -> list[Path]:
    """Scene folders of a dataset root: those listed in ``splits/<split>.txt``, or all.

    ``split=None`` (or "all") lists every sub-folder with a ``color/`` folder or a
    ``<name>_vh_clean_2.ply`` mesh, sorted.
    """
    r = Path(root)
    if not r.is_dir():
        raise SceneError(f"dataset root not found: {r}")
    if split in (None, "all"):
        return sorted(p for p in r.iterdir() if p.is_dir() and (
            (p / "color").is_dir() or (p / f"{p.name}_vh_clean_2.ply").is_file()))
    sp = r / "splits" / f"{split}.txt"
    if not sp.is_file():
        raise SceneError(f"missing file: {sp} (no split {split!r} in {r})")
    names = [ln.strip() for ln in sp.read_text().splitlines() if ln.strip()]
    missing = [n for n in names if not (r / n).is_dir()]
    if missing:
        raise SceneError(f"{sp}: lists scene(s) not found under {r}: {missing[:5]}")
    return [r / n for n in names]


__all__ = [
    "LABEL_TABLE_NAMES",
    "SceneError",
    "find_label_table",
    "list_scenes",
    "load_color",
    "load_depth",
    "load_depth_raw",
    "load_instance_image",
    "load_scene",
    "read_label_table",
    "read_ply",
    "read_pose",
]
