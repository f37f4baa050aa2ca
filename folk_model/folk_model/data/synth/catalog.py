"""Sweet Home 3D furniture catalogue: parsing, ScanNet200-style class mapping, mesh assets.

The Debian package ``sweethome3d-furniture`` ships zip libraries (``*.sh3f``), each with a Java
properties catalogue (``PluginFurnitureCatalog.properties``: name, category, real width / depth /
height in cm, creator, model path) and textured OBJ models. We map catalogue names to class names
in the spirit of ScanNet200 so that every class has several distinct meshes, and hold some models
of each class out for test scenes, and some for development scenes (``split_models``), so that
scores measure generalisation to unseen shapes.

Meshes are converted once into a compact ``.npz`` (world-scaled, z-up, base at z=0, centred in
x/y, front facing -y) in a cache folder, because parsing OBJ files is the slowest step.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FURNITURE_DIR = Path("/usr/share/sweethome3d/furniture")
CACHE_VERSION = 2  # bump when the cached mesh format changes
MAX_TEXTURE = 256  # textures are downscaled to at most this many pixels a side (speed, memory)

# Library licences, by library file stem (the catalogue's ``license`` line is free text).
_LIBRARY_LICENCE = {
    "BlendSwap-CC-0": "CC0 1.0 (public domain)",
    "BlendSwap-CC-BY": "CC-BY 3.0",
    "KatorLegaz": "CC-BY 3.0 US",
    "Scopia": "CC-BY 3.0",
    "Reallusion": "free with Sweet Home 3D",
}

# (class, regex on the catalogue name (full match, case-insensitive), allowed categories or None)
# Order matters: the first rule that matches wins.
CLASS_RULES: list[tuple[str, str, tuple[str, ...] | None]] = [
    ("office chair", r"chair", ("Office",)),
    ("armchair", r"(modern |winchester |rattan )?armchair", None),
    ("chair", r"(oak |osaka |plastic |ryokan |cafe |folding )?chair( with cushion)?", None),
    ("sofa", r"(corner |winchester |burlap |clear )?sofa( [23] seats)?|(futon )?couch"
     r"|convertible sofa bz", None),
    ("bed", r"bed|iron bed|captain's bed|day bed|child bed|bunk bed", None),
    ("crib", r"baby bed|crib", None),
    ("coffee table", r"coffee table", None),
    ("nightstand", r"bedside table", None),
    ("desk", r"(wooden )?desk|desk table|technical table", None),
    ("table", r"(oak |round |black |wooden |wooden alder |wooden teak |glass |folding |cafe |bar )?"
     r"table|table with tablecloth|table on trestles", None),
    ("dresser", r"dresser with drawers|drawers cabinet|chest|dressing table", None),
    ("cabinet", r"cupboard|glass door cabinet|locked locker|filing cabinet", None),
    ("kitchen cabinet", r"(small )?lower cabinet|lower corner cabinet|high cabinet", None),
    ("kitchen counter", r"island( extension)?", None),
    ("bookshelf", r"(full )?bookcase", None),
    ("shelf", r"(vertical )?shelves", None),
    ("wardrobe", r"wardrobe", None),
    ("tv", r"tv( 16:9)?|wall flat tv", None),
    ("monitor", r"apple imac.*", None),
    ("tv stand", r"television cabinet|tv stand", None),
    ("lamp", r"lamp|desk lamp|little lamp|pedestal vase lamp|japanese lantern", None),
    ("toilet", r"toilets unit", None),
    ("sink", r"washbasin|basin|sink|small lavatory", None),
    ("bathroom vanity", r"(double )?vanity", None),
    ("bathtub", r"bath|corner bathtub|island bath", None),
    ("refrigerator", r"refrigerator|large fridge|fridge", None),
    ("stove", r"stove|cooktop|large stove|cooker|induction cooker [24] zones", None),
    ("oven", r"(double |small )?oven", None),
    ("washing machine", r"(clothes )?washing machine", None),
    ("plant", r"(decorative |little |indoor |spider |succulent )?plant|orchids|cactus|bamboo"
     r"|spathiphyllum|yucca|ficus|bonsai tree|flowers|tulips|white lily", None),
    ("vase", r"vase|pottery|old jar", None),
    ("trash can", r"dustbin|bullet trash can|residential trashcan|recycling bin", None),
    ("stool", r"(bar )?stool", None),
    ("ottoman", r"armchair ottoman|puff", None),
    ("bench", r"(piano |painted )?bench", None),
    ("piano", r"grand piano|upright piano", None),
    ("radiator", r"radiator", None),
    ("laptop", r"laptop|apple ibook", None),
    ("cup", r"coffee cup|coffee mug|cup|plastic cup", None),
    ("bottle", r"beer bottle|wine bottle|bottle|yogurt bottle|baby bottle|flacon", None),
    ("bowl", r"bowl( with fruits| with salad)?", None),
    ("clock", r"clock|cuckoo clock", None),
    ("telephone", r"phone|wireless phone|mobile phone", None),
    ("speaker", r"speaker|mp3 station|mini stereo", None),
    ("coffee maker", r"coffee brewer|coffee maker|coffee machine|espresso kettle", None),
    ("box", r"box|cardboard box|open cardboard box|crate|gift", None),
    ("suitcase", r"suitcase|briefcase|trunck", None),
    ("bag", r"backpack|handbag", None),
    ("fireplace", r"fireplace", None),
    ("basket", r"clothes basket|shopping basket", None),
    ("plate", r"(oval )?plate", None),
    ("candle", r"candle", None),
    ("scale", r"kitchen scale|electronic scale", None),
]

# Where a class goes in a room: "wall" (back to a wall), "floor" (free-standing) or "top" (on a
# table, desk or shelf). Small objects of any class may also go on top of a support.
CLASS_ROLE: dict[str, str] = {
    "office chair": "floor", "armchair": "floor", "chair": "floor", "sofa": "wall", "bed": "wall",
    "crib": "wall", "coffee table": "floor", "nightstand": "wall", "desk": "wall",
    "table": "floor", "dresser": "wall", "cabinet": "wall", "kitchen cabinet": "wall",
    "kitchen counter": "floor", "bookshelf": "wall", "shelf": "wall", "wardrobe": "wall",
    "tv": "top", "monitor": "top", "tv stand": "wall", "lamp": "floor", "toilet": "wall",
    "sink": "wall", "bathroom vanity": "wall", "bathtub": "wall", "refrigerator": "wall",
    "stove": "wall", "oven": "wall", "washing machine": "wall", "plant": "floor", "vase": "top",
    "trash can": "floor", "stool": "floor", "ottoman": "floor", "bench": "floor",
    "piano": "wall", "radiator": "wall", "laptop": "top", "cup": "top", "bottle": "top",
    "bowl": "top", "clock": "top", "telephone": "top", "speaker": "top", "coffee maker": "top",
    "box": "floor", "suitcase": "floor", "bag": "floor", "fireplace": "wall", "basket": "floor",
    "plate": "top", "candle": "top", "scale": "top",
}

# Classes whose top is a surface that small objects may stand on.
SUPPORT_CLASSES = frozenset({
    "table", "desk", "coffee table", "nightstand", "dresser", "cabinet", "kitchen cabinet",
    "kitchen counter", "tv stand", "bookshelf", "shelf",
})

# Suggested held-out ("novel") classes for open-vocabulary evaluation: common, visually distinct,
# each with several models, spread over room types.
NOVEL_CLASSES = [
    "sofa", "bathtub", "refrigerator", "lamp", "piano", "trash can", "nightstand", "cup",
]


@dataclass(frozen=True)
class CatalogModel:
    """One catalogue entry that maps to a class.

    Attributes:
        uid: unique id ``<library>/<catalogue id>``.
        name: catalogue name ("Oak chair").
        category: catalogue category ("Living room").
        cls: mapped class name.
        size: (width, depth, height) in metres, the real dimensions from the catalogue.
        library: path of the ``.sh3f`` file.
        model_path: path of the OBJ inside the zip (no leading slash).
        rotation: 3x3 row-major model rotation from the catalogue (identity if absent).
        drop_on_top: height in metres where objects can be put on it, or None.
        licence: licence text of the library.
        creator: the model's author.
    """

    uid: str
    name: str
    category: str
    cls: str
    size: tuple[float, float, float]
    library: str
    model_path: str
    rotation: tuple[float, ...]
    drop_on_top: float | None
    licence: str
    creator: str


@dataclass
class MeshAsset:
    """A model ready to render, in its own frame (metres, z-up, base at z=0, front towards -y).

    Attributes:
        vertices: float32 [V, 3].
        faces: int32 [F, 3].
        face_uv: float32 [F, 3, 2] texture coordinates per face corner (0 where untextured).
        face_mat: int32 [F] material index per face.
        mat_color: float32 [M, 3] diffuse colour per material in [0, 1].
        mat_tex: int32 [M] texture index per material, -1 = plain colour.
        textures: list of uint8 [h, w, 3] images.
    """

    vertices: np.ndarray
    faces: np.ndarray
    face_uv: np.ndarray
    face_mat: np.ndarray
    mat_color: np.ndarray
    mat_tex: np.ndarray
    textures: list[np.ndarray]


def _parse_properties(text: str) -> dict[str, str]:
    """Parse a Java properties file (enough of it for these catalogues)."""
    out: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line[0] in "#!":
            continue
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + lines[i].strip()
            i += 1
        m = re.match(r"([^=:]+?)\s*[=:]\s*(.*)", line)
        if not m:
            continue
        value = re.sub(r"\\u([0-9a-fA-F]{4})", lambda g: chr(int(g.group(1), 16)), m.group(2))
        out[m.group(1).strip()] = value
    return out


def classify(name: str, category: str) -> str | None:
    """The class of a catalogue entry, or None when it is not used (doors, people, cars...)."""
    for cls, pattern, categories in CLASS_RULES:
        if categories is not None and category not in categories:
            continue
        if re.fullmatch(pattern, name.strip(), flags=re.IGNORECASE):
            return cls
    return None


@lru_cache(maxsize=4)
def load_catalog(furniture_dir: str = str(FURNITURE_DIR)) -> tuple[CatalogModel, ...]:
    """All usable catalogue models, sorted by uid (deterministic across runs).

    Models that are doors or windows, hang on a wall (elevation > 5 cm), or map to no class are
    left out. Classes with fewer than two models are dropped: a class must never be one mesh.
    """
    root = Path(furniture_dir)
    libs = sorted(root.glob("*.sh3f"))
    if not libs:
        raise FileNotFoundError(
            f"no *.sh3f furniture libraries in {root}; install the Debian package "
            "sweethome3d-furniture")
    models: list[CatalogModel] = []
    for lib in libs:
        with zipfile.ZipFile(lib) as zf:
            props = _parse_properties(
                zf.read("PluginFurnitureCatalog.properties").decode("latin-1"))
        licence = _LIBRARY_LICENCE.get(lib.stem, props.get("license", "unknown"))
        idx = sorted({int(k.split("#")[1]) for k in props if k.startswith("id#")})
        for n in idx:
            get = props.get
            name, cat = get(f"name#{n}", ""), get(f"category#{n}", "")
            if get(f"doorOrWindow#{n}", "false") == "true":
                continue
            if float(get(f"elevation#{n}", "0") or 0) > 5.0:
                continue
            cls = classify(name, cat)
            if cls is None:
                continue
            rot = tuple(float(x) for x in get(f"modelRotation#{n}", "1 0 0 0 1 0 0 0 1").split())
            drop = get(f"dropOnTopElevation#{n}")
            size = (float(get(f"width#{n}")) / 100, float(get(f"depth#{n}")) / 100,
                    float(get(f"height#{n}")) / 100)
            models.append(CatalogModel(
                uid=f"{lib.stem}/{get(f'id#{n}')}", name=name, category=cat, cls=cls, size=size,
                library=str(lib), model_path=get(f"model#{n}", "").lstrip("/"), rotation=rot,
                drop_on_top=float(drop) / 100 if drop else None, licence=licence,
                creator=get(f"creator#{n}", "unknown")))
    counts: dict[str, int] = {}
    for m in models:
        counts[m.cls] = counts.get(m.cls, 0) + 1
    kept = tuple(sorted((m for m in models if counts[m.cls] >= 2), key=lambda m: m.uid))
    log.debug("catalogue: %d models in %d classes", len(kept), len({m.cls for m in kept}))
    return kept


def class_names(models: tuple[CatalogModel, ...] | None = None) -> list[str]:
    """Sorted class names present in the catalogue."""
    models = load_catalog() if models is None else models
    return sorted({m.cls for m in models})


def _stable_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


MODEL_SPLITS = ("train", "dev", "test")


def _partition(n: int) -> tuple[int, int]:
    """(test, dev) model counts for a class of ``n`` models.

    Every class gives at least one model to ``test``, so that no class is ever evaluated on a
    training mesh. ``dev`` gets models of its own only where at least two remain for training
    (n >= 4); below that, dev rooms reuse training meshes of the class and reports mark the
    class as seen-mesh on dev. Training keeps the rest.
    """
    test = max(1, round(n / 4))
    dev = max(1, round(n / 5))
    if n - test - dev < 2:
        dev = 0
    return test, dev


def split_models(models: tuple[CatalogModel, ...], split: str) -> dict[str, list[CatalogModel]]:
    """Models per class for a split: "train", "dev" or "test".

    Models are ordered by a stable hash of their uid; the first ``test`` of a class go to the
    test pool, the next ``dev`` to the dev pool, the rest to training (``_partition``). Test
    models never appear in another pool, so a ``test`` room is made of meshes that no
    training or development run has seen. A class without dev models of its own (fewer
    than four models) uses its training models in dev rooms.
    """
    if split not in MODEL_SPLITS:
        raise ValueError(f"split must be one of {MODEL_SPLITS}, got {split!r}")
    by_cls: dict[str, list[CatalogModel]] = {}
    for m in models:
        by_cls.setdefault(m.cls, []).append(m)
    out: dict[str, list[CatalogModel]] = {}
    for cls, ms in sorted(by_cls.items()):
        ordered = sorted(ms, key=lambda m: _stable_hash(m.uid))
        n_test, n_dev = _partition(len(ordered))
        pools = {"test": ordered[:n_test], "dev": ordered[n_test:n_test + n_dev],
                 "train": ordered[n_test + n_dev:]}
        chosen = pools[split] or pools["train"]
        out[cls] = sorted(chosen, key=lambda m: m.uid)
    return out


def mesh_split_table(models: tuple[CatalogModel, ...] | None = None
                     ) -> dict[str, dict[str, list[str]]]:
    """Per class, the model uids of each pool and which pools reuse training meshes.

    ``{cls: {"train": [...], "dev": [...], "test": [...], "seen_in": ["dev"] or []}}``;
    written into every dataset's classes.json so that a report can say, per class, whether
    the meshes it was measured on were seen in training.
    """
    models = load_catalog() if models is None else models
    pools = {s: split_models(models, s) for s in MODEL_SPLITS}
    out: dict[str, dict[str, list[str]]] = {}
    for cls in sorted(pools["train"]):
        row = {s: [m.uid for m in pools[s][cls]] for s in MODEL_SPLITS}
        train = set(row["train"])
        row["seen_in"] = [s for s in ("dev", "test") if set(row[s]) & train]
        out[cls] = row
    return out


def held_out_models(models: tuple[CatalogModel, ...] | None = None) -> dict[str, list[str]]:
    """Test model uids per class: the meshes that only ``test`` rooms use."""
    return {c: row["test"] for c, row in mesh_split_table(models).items()}


# --------------------------------------------------------------------------------------------
# Meshes
# --------------------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "folk" / "sh3d"


def _cache_file(model: CatalogModel, cache_dir: Path) -> Path:
    key = _stable_hash(f"{CACHE_VERSION}:{model.uid}:{model.size}:{model.rotation}")[:16]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", model.uid)[:60]
    return cache_dir / f"{safe}_{key}.npz"


def load_mesh(model: CatalogModel, cache_dir: str | Path | None = None) -> MeshAsset:
    """The model's render-ready mesh, from the cache or converted from the library."""
    cdir = Path(cache_dir) if cache_dir else default_cache_dir()
    path = _cache_file(model, cdir)
    if path.is_file():
        with np.load(path) as z:
            ntex = int(z["num_textures"])
            return MeshAsset(z["vertices"], z["faces"], z["face_uv"], z["face_mat"],
                             z["mat_color"], z["mat_tex"], [z[f"tex{i}"] for i in range(ntex)])
    asset = _convert(model)
    cdir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, vertices=asset.vertices, faces=asset.faces, face_uv=asset.face_uv,
             face_mat=asset.face_mat, mat_color=asset.mat_color, mat_tex=asset.mat_tex,
             num_textures=len(asset.textures),
             **{f"tex{i}": t for i, t in enumerate(asset.textures)})
    tmp.replace(path)  # atomic: parallel generators never read a half-written file
    return asset


def _convert(model: CatalogModel) -> MeshAsset:
    """Read the OBJ (with MTL and textures) from its zip into a normalised ``MeshAsset``."""
    import trimesh  # heavy, only needed on a cache miss
    from PIL import Image

    with zipfile.ZipFile(model.library) as zf:
        folder = model.model_path.rsplit("/", 1)[0] + "/" if "/" in model.model_path else ""
        files = {n[len(folder):]: n for n in zf.namelist() if n.startswith(folder)}

        def resolver(name: str) -> bytes:
            key = name.replace("\\", "/").lstrip("./")
            if key in files:
                return zf.read(files[key])
            base = key.rsplit("/", 1)[-1].lower()
            for k, full in files.items():
                if k.rsplit("/", 1)[-1].lower() == base:
                    return zf.read(full)
            raise FileNotFoundError(name)

        data = zf.read(model.model_path)
        res = _ZipResolver(resolver)
        with warnings.catch_warnings():  # trimesh warns on OBJs with unused texture coords
            warnings.simplefilter("ignore", RuntimeWarning)
            scene = trimesh.load(io.BytesIO(data), file_type="obj", resolver=res,
                                 force="scene", process=False, maintain_order=True)

    verts, faces, fuv, fmat, colors, mtex, textures = [], [], [], [], [], [], []
    tex_ids: dict[int, int] = {}
    offset = 0
    for node in scene.graph.nodes_geometry:
        tf, gname = scene.graph[node]
        g = scene.geometry[gname]
        if not hasattr(g, "faces") or len(g.faces) == 0:
            continue
        v = np.asarray(g.vertices, np.float64) @ tf[:3, :3].T + tf[:3, 3]
        f = np.asarray(g.faces, np.int64)
        color = np.array([0.7, 0.7, 0.7])
        tex = -1
        uv = None
        vis = g.visual
        mat = getattr(vis, "material", None)
        if mat is not None:
            diffuse = getattr(mat, "diffuse", None)
            if diffuse is None:
                diffuse = getattr(mat, "baseColorFactor", None)
            if diffuse is not None:
                color = np.asarray(diffuse, np.float64)[:3] / 255.0
            image = getattr(mat, "image", None)
            if image is None:
                image = getattr(mat, "baseColorTexture", None)
            if image is not None and getattr(vis, "uv", None) is not None \
                    and len(vis.uv) == len(v):
                key = id(image)
                if key not in tex_ids:
                    im = image.convert("RGB")
                    im.thumbnail((MAX_TEXTURE, MAX_TEXTURE), Image.BILINEAR)
                    tex_ids[key] = len(textures)
                    textures.append(np.asarray(im, np.uint8).copy())
                tex = tex_ids[key]
                uv = np.asarray(vis.uv, np.float32)
        elif hasattr(vis, "face_colors"):
            color = np.asarray(vis.face_colors, np.float64)[:, :3].mean(0) / 255.0
        verts.append(v)
        faces.append(f + offset)
        fuv.append(uv[f] if uv is not None else np.zeros((len(f), 3, 2), np.float32))
        fmat.append(np.full(len(f), len(colors), np.int32))
        colors.append(color)
        mtex.append(tex)
        offset += len(v)
    if not verts:
        raise ValueError(f"{model.library}:{model.model_path}: no faces")
    V = np.concatenate(verts)
    R = np.asarray(model.rotation, np.float64).reshape(3, 3)
    V = V @ R.T
    # OBJ is y-up with the front towards +z; the world is z-up with the front towards -y.
    V = np.stack([V[:, 0], -V[:, 2], V[:, 1]], axis=1)
    lo, hi = V.min(0), V.max(0)
    ext = np.maximum(hi - lo, 1e-6)
    scale = np.asarray(model.size) / ext
    V = (V - lo) * scale
    V[:, 0] -= model.size[0] / 2
    V[:, 1] -= model.size[1] / 2
    return MeshAsset(
        vertices=V.astype(np.float32), faces=np.concatenate(faces).astype(np.int32),
        face_uv=np.concatenate(fuv).astype(np.float32), face_mat=np.concatenate(fmat),
        mat_color=np.asarray(colors, np.float32).reshape(-1, 3),
        mat_tex=np.asarray(mtex, np.int32), textures=textures)


class _ZipResolver:
    """A trimesh resolver that reads MTL and texture files from the furniture zip."""

    def __init__(self, read: Callable[[str], bytes]) -> None:
        self._read = read

    def get(self, name: str) -> bytes:
        return self._read(name)

    def __getitem__(self, name: str) -> bytes:
        return self._read(name)

    def namespaced(self, namespace: str) -> _ZipResolver:
        return self

    def write(self, name: str, data: bytes) -> None:
        raise NotImplementedError
