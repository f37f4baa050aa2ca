"""Rooms and furniture placement on a 2D floor grid.

A room is a set of axis-aligned rectangles rasterised into a 5 cm floor grid: one rectangle, an
L-shape (two rectangles joined openly), or two rooms joined by a door in a thin partition wall.
Walls are the grid's boundary edges, so any shape gives watertight walls for free.

Furniture footprints are rasterised into the same grid (grown by a margin that makes "no two
footprints share a cell" imply "no two footprints overlap"), so floor objects never
interpenetrate. Small objects go on top of supports (tables, shelves...), at the height found by
casting rays down onto the support's own mesh, with a ray cast up to make sure nothing (a shelf
board) is in the way.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .catalog import CLASS_ROLE, SUPPORT_CLASSES, CatalogModel, MeshAsset

log = logging.getLogger(__name__)

CELL = 0.05  # floor grid cell (metres)
MARGIN = 0.04  # footprint growth; > half a cell diagonal, so disjoint cells => disjoint shapes
WALL_GAP = 0.005  # extra gap between a wall and the (margin-grown) back of furniture at it
PARTITION = 0.10  # thickness of the wall between two rooms (metres)
DOOR_WIDTH = 0.9  # door opening between two rooms (metres)
DOOR_HEIGHT = 2.05  # door opening height (metres)

# Room themes: (class, min count, max count). Counts are drawn per room.
THEMES: dict[str, list[tuple[str, int, int]]] = {
    "living": [("sofa", 1, 1), ("coffee table", 0, 1), ("armchair", 0, 2), ("tv stand", 0, 1),
               ("bookshelf", 0, 1), ("shelf", 0, 1), ("plant", 1, 2), ("lamp", 0, 1),
               ("piano", 0, 1), ("fireplace", 0, 1), ("radiator", 0, 1), ("ottoman", 0, 1),
               ("table", 0, 1), ("chair", 0, 2)],
    "bedroom": [("bed", 1, 1), ("nightstand", 1, 2), ("wardrobe", 0, 1), ("dresser", 0, 1),
                ("desk", 0, 1), ("chair", 0, 1), ("plant", 0, 1), ("crib", 0, 1),
                ("suitcase", 0, 1), ("bag", 0, 1), ("lamp", 0, 1), ("radiator", 0, 1)],
    "office": [("desk", 1, 3), ("office chair", 1, 2), ("chair", 0, 1), ("bookshelf", 0, 2),
               ("cabinet", 0, 1), ("shelf", 0, 1), ("trash can", 0, 1), ("plant", 0, 1),
               ("box", 0, 2), ("table", 0, 1), ("lamp", 0, 1), ("radiator", 0, 1)],
    "kitchen": [("kitchen cabinet", 1, 3), ("refrigerator", 1, 1), ("stove", 1, 1),
                ("oven", 0, 1), ("washing machine", 0, 1), ("table", 1, 1), ("chair", 2, 4),
                ("trash can", 0, 1), ("kitchen counter", 0, 1), ("stool", 0, 2),
                ("dresser", 0, 1)],
    "bathroom": [("toilet", 1, 1), ("sink", 1, 1), ("bathtub", 0, 1), ("bathroom vanity", 0, 1),
                 ("washing machine", 0, 1), ("trash can", 0, 1), ("basket", 0, 1),
                 ("radiator", 0, 1), ("cabinet", 0, 1), ("stool", 0, 1)],
    "dining": [("table", 1, 1), ("chair", 3, 6), ("cabinet", 0, 1), ("dresser", 0, 1),
               ("plant", 1, 2), ("lamp", 0, 1), ("bench", 0, 1), ("shelf", 0, 1)],
}
THEME_WEIGHTS = {"living": 3, "bedroom": 2, "office": 2, "kitchen": 2, "bathroom": 1,
                 "dining": 1}
# Classes that small objects on supports are drawn from (plus any small model of other classes).
TOP_CLASSES = ["lamp", "vase", "cup", "bottle", "bowl", "plate", "laptop", "monitor", "tv",
               "telephone", "speaker", "coffee maker", "candle", "scale", "plant", "box",
               "clock"]
# Companion placement: a chair goes to a table, a coffee table in front of a sofa.
COMPANIONS = {"chair": ("table", "desk", "kitchen counter"), "office chair": ("desk", "table"),
              "stool": ("kitchen counter", "table"), "coffee table": ("sofa",),
              "ottoman": ("armchair", "sofa")}


@dataclass
class Rect:
    """Axis-aligned rectangle of floor (metres): x0 <= x <= x1, y0 <= y <= y1."""

    x0: float
    y0: float
    x1: float
    y1: float
    theme: str = "living"

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2])


@dataclass
class Room:
    """The floor plan.

    Attributes:
        kind: "rect", "L" or "two".
        rects: the floor rectangles (one per room part).
        floor: bool [nx, ny] grid; True = walkable floor.
        height: wall height (metres).
        door: (x, y) centre of the opening between the parts (None for one rectangle).
        door_axis: the unit normal of the partition at the door (None without a door).
        lintel: (x0, y0, x1, y1) of the box above the door, or None.
    """

    kind: str
    rects: list[Rect]
    floor: np.ndarray
    height: float
    door: np.ndarray | None = None
    door_axis: np.ndarray | None = None
    lintel: tuple[float, float, float, float] | None = None

    def cell_centers(self) -> tuple[np.ndarray, np.ndarray]:
        nx, ny = self.floor.shape
        return (np.arange(nx) + 0.5) * CELL, (np.arange(ny) + 0.5) * CELL

    def rect_of(self, xy: np.ndarray) -> int:
        """Index of the rectangle holding point ``xy`` (nearest centre if none)."""
        for i, r in enumerate(self.rects):
            if r.x0 <= xy[0] <= r.x1 and r.y0 <= xy[1] <= r.y1:
                return i
        return int(np.argmin([np.linalg.norm(r.center - xy) for r in self.rects]))


@dataclass
class Placed:
    """One placed object: world pose = translate(pos) @ rotz(yaw) applied to the model frame."""

    instance_id: int
    model: CatalogModel
    pos: np.ndarray  # (x, y, z) of the model's base centre
    yaw: float  # radians; the model's front (-y) turns to (sin yaw, -cos yaw)
    support: int | None = None  # instance id of the object it stands on
    on_top: list[tuple[float, float, float, float]] = field(default_factory=list)  # xy boxes

    def transform(self) -> np.ndarray:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        T = np.eye(4)
        T[:2, :2] = [[c, -s], [s, c]]
        T[:3, 3] = self.pos
        return T


def _q(v: float) -> float:
    """Round to the grid so that rectangles fall on cell borders."""
    return round(v / CELL) * CELL


def make_room(rng: np.random.Generator) -> Room:
    """A random floor plan: one rectangle (50%), an L (25%) or two rooms with a door (25%)."""
    kind = str(rng.choice(["rect", "L", "two"], p=[0.5, 0.25, 0.25]))
    themes = list(THEME_WEIGHTS)
    w = np.array([THEME_WEIGHTS[t] for t in themes], float)
    theme_a = str(rng.choice(themes, p=w / w.sum()))
    wa, da = _q(rng.uniform(3.6, 6.5)), _q(rng.uniform(3.2, 5.5))
    if theme_a == "bathroom":
        wa, da = _q(rng.uniform(2.6, 3.6)), _q(rng.uniform(2.4, 3.4))
    rects = [Rect(0.0, 0.0, wa, da, theme_a)]
    door = door_axis = lintel = None
    if kind == "L":
        wb = _q(rng.uniform(2.0, max(2.1, wa - 1.2)))
        db = _q(rng.uniform(1.8, 3.0))
        x0 = 0.0 if rng.random() < 0.5 else _q(wa - wb)
        rects.append(Rect(x0, da, x0 + wb, da + db, theme_a))
        door = np.array([x0 + wb / 2, da])
        door_axis = np.array([0.0, 1.0])
    elif kind == "two":
        wb, db = _q(rng.uniform(2.8, 4.5)), _q(rng.uniform(2.8, 4.2))
        x0 = _q(rng.uniform(max(-wb + 1.6, -1.0), min(wa - 1.6, wa - wb + 1.0)))
        theme_b = str(rng.choice(themes, p=w / w.sum()))
        yb = da + PARTITION
        rects.append(Rect(x0, yb, x0 + wb, yb + db, theme_b))
        lo, hi = max(0.0, x0) + 0.3, min(wa, x0 + wb) - 0.3 - DOOR_WIDTH
        dx = _q(rng.uniform(lo, max(lo, hi)))
        door = np.array([dx + DOOR_WIDTH / 2, da + PARTITION / 2])
        door_axis = np.array([0.0, 1.0])
        lintel = (dx, da, dx + DOOR_WIDTH, da + PARTITION)
    # shift so that everything is at positive coordinates, one cell of border around
    minx = min(r.x0 for r in rects) - CELL
    for r in rects:
        r.x0, r.x1, r.y0, r.y1 = r.x0 - minx, r.x1 - minx, r.y0 + CELL, r.y1 + CELL
    if door is not None:
        door = door + np.array([-minx, CELL])
    if lintel is not None:
        lintel = (lintel[0] - minx, lintel[1] + CELL, lintel[2] - minx, lintel[3] + CELL)
    nx = round((max(r.x1 for r in rects) + CELL) / CELL)
    ny = round((max(r.y1 for r in rects) + CELL) / CELL)
    floor = np.zeros((nx, ny), bool)
    for r in rects:
        floor[round(r.x0 / CELL):round(r.x1 / CELL), round(r.y0 / CELL):round(r.y1 / CELL)] = True
    if lintel is not None:
        floor[round(lintel[0] / CELL):round(lintel[2] / CELL),
              round(lintel[1] / CELL):round(lintel[3] / CELL)] = True
    height = float(_q(rng.uniform(2.5, 3.0)))
    return Room(kind, rects, floor, height, door, door_axis, lintel)


def footprint_cells(room: Room, center: np.ndarray, yaw: float, size_xy: tuple[float, float],
                    margin: float = MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """Grid cells whose centres lie in the rotated rectangle grown by ``margin``."""
    hw, hd = size_xy[0] / 2 + margin, size_xy[1] / 2 + margin
    r = math.hypot(hw, hd)
    nx, ny = room.floor.shape
    i0, i1 = max(0, int((center[0] - r) / CELL)), min(nx, int((center[0] + r) / CELL) + 2)
    j0, j1 = max(0, int((center[1] - r) / CELL)), min(ny, int((center[1] + r) / CELL) + 2)
    if i0 >= i1 or j0 >= j1:
        return np.zeros(0, int), np.zeros(0, int)
    xs = (np.arange(i0, i1) + 0.5) * CELL - center[0]
    ys = (np.arange(j0, j1) + 0.5) * CELL - center[1]
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    c, s = math.cos(yaw), math.sin(yaw)
    lx, ly = c * X + s * Y, -s * X + c * Y
    inside = (np.abs(lx) <= hw) & (np.abs(ly) <= hd)
    ii, jj = np.nonzero(inside)
    return ii + i0, jj + j0


class Placer:
    """Places furniture into a room, keeping an occupancy grid."""

    def __init__(self, room: Room, rng: np.random.Generator,
                 models: dict[str, list[CatalogModel]],
                 meshes: Callable[[CatalogModel], MeshAsset]) -> None:
        self.room = room
        self.rng = rng
        self.models = models
        self.meshes = meshes
        self.occ = ~room.floor.copy()
        self.placed: list[Placed] = []
        self._ray_cache: dict = {}  # support mesh -> ray-casting scene
        # keep the door passage free (a robot must get through)
        if room.door is not None:
            ii, jj = footprint_cells(room, room.door, 0.0, (1.2, 1.4), 0.0)
            self._reserved = (ii, jj)
            self.occ[ii, jj] = True
        else:
            self._reserved = None

    # ----------------------------------------------------------------------------------------
    def _fits(self, center: np.ndarray, yaw: float, size_xy: tuple[float, float]) -> bool:
        ii, jj = footprint_cells(self.room, center, yaw, size_xy)
        if len(ii) == 0:
            return False
        # the grown footprint must not leave the grid either
        hw = math.hypot(size_xy[0], size_xy[1]) / 2 + MARGIN
        nx, ny = self.occ.shape
        if center[0] - hw < 0 or center[1] - hw < 0 or center[0] + hw > nx * CELL \
                or center[1] + hw > ny * CELL:
            return not self.occ[ii, jj].any() and self._inside_strict(center, yaw, size_xy)
        return not self.occ[ii, jj].any()

    def _inside_strict(self, center: np.ndarray, yaw: float, size_xy: tuple[float, float]) -> bool:
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * np.array(size_xy) / 2
        c, s = math.cos(yaw), math.sin(yaw)
        pts = corners @ np.array([[c, s], [-s, c]]) + center
        nx, ny = self.occ.shape
        return bool(np.all((pts > 0) & (pts < [nx * CELL, ny * CELL])))

    def _mark(self, center: np.ndarray, yaw: float, size_xy: tuple[float, float]) -> None:
        ii, jj = footprint_cells(self.room, center, yaw, size_xy)
        self.occ[ii, jj] = True

    def _new(self, model: CatalogModel, center: np.ndarray, yaw: float, z: float = 0.0,
             support: int | None = None) -> Placed:
        p = Placed(len(self.placed) + 1, model, np.array([center[0], center[1], z]), yaw,
                   support)
        self.placed.append(p)
        return p

    # ----------------------------------------------------------------------------------------
    def _wall_spots(self, rect: Rect) -> list[tuple[np.ndarray, float]]:
        """Points on the walls of ``rect`` with the yaw that turns a model's front inward."""
        f = self.room.floor
        nx, ny = f.shape
        out = []
        for i in range(round(rect.x0 / CELL), round(rect.x1 / CELL)):
            for j in range(round(rect.y0 / CELL), round(rect.y1 / CELL)):
                if not f[i, j]:
                    continue
                cx, cy = (i + 0.5) * CELL, (j + 0.5) * CELL
                if j == 0 or not f[i, j - 1]:  # wall below, face +y
                    out.append((np.array([cx, j * CELL]), math.pi))
                if j == ny - 1 or not f[i, j + 1]:  # wall above, face -y
                    out.append((np.array([cx, (j + 1) * CELL]), 0.0))
                if i == 0 or not f[i - 1, j]:  # wall left, face +x
                    out.append((np.array([i * CELL, cy]), math.pi / 2))
                if i == nx - 1 or not f[i + 1, j]:  # wall right, face -x
                    out.append((np.array([(i + 1) * CELL, cy]), -math.pi / 2))
        return out

    def place_wall(self, model: CatalogModel, rect: Rect, tries: int = 40) -> Placed | None:
        spots = self._wall_spots(rect)
        if not spots:
            return None
        w, d, _ = model.size
        for k in self.rng.permutation(len(spots))[:tries]:
            p, yaw = spots[k]
            front = np.array([math.sin(yaw), -math.cos(yaw)])
            center = p + front * (d / 2 + WALL_GAP + MARGIN)
            if self._fits(center, yaw, (w, d)):
                self._mark(center, yaw, (w, d))
                return self._new(model, center, yaw)
        return None

    def place_floor(self, model: CatalogModel, rect: Rect, tries: int = 40) -> Placed | None:
        w, d, _ = model.size
        partners = [p for p in self.placed
                    if p.model.cls in COMPANIONS.get(model.cls, ())
                    and self.room.rect_of(p.pos[:2]) == self.room.rects.index(rect)]
        for t in range(tries):
            if partners and t < tries // 2:
                host = partners[int(self.rng.integers(len(partners)))]
                side = int(self.rng.integers(4))
                hw, hd = host.model.size[0] / 2, host.model.size[1] / 2
                # local offset of the partner's side, and the yaw that faces the host
                local = [(0, -(hd + d / 2 + 0.12)), (0, hd + d / 2 + 0.12),
                         (-(hw + d / 2 + 0.12), 0), (hw + d / 2 + 0.12, 0)][side]
                along = self.rng.uniform(-0.3, 0.3) * (hw if side < 2 else hd)
                local = (local[0] + along, local[1]) if side < 2 else (local[0], local[1] + along)
                c, s = math.cos(host.yaw), math.sin(host.yaw)
                center = host.pos[:2] + np.array([c * local[0] - s * local[1],
                                                  s * local[0] + c * local[1]])
                to_host = host.pos[:2] - center
                # the model's front is -y: yaw with (sin, -cos) = direction to the host
                yaw = math.atan2(to_host[0], -to_host[1]) + self.rng.normal(0, 0.08)
            else:
                center = np.array([self.rng.uniform(rect.x0 + 0.3, rect.x1 - 0.3),
                                   self.rng.uniform(rect.y0 + 0.3, rect.y1 - 0.3)])
                yaw = self.rng.integers(4) * math.pi / 2 + self.rng.normal(0, 0.15)
            if self._fits(center, yaw, (w, d)):
                self._mark(center, yaw, (w, d))
                return self._new(model, center, float(yaw))
        return None

    def place_on(self, model: CatalogModel, tries: int = 30) -> Placed | None:
        """Put a small model on a random support, on the support mesh's top surface."""
        from .render import ray_heights  # local: render imports open3d

        w, d, h = model.size
        supports = [p for p in self.placed if p.model.cls in SUPPORT_CLASSES
                    and p.model.size[2] <= 1.4 and p.support is None
                    and p.model.size[0] > w + 0.05 and p.model.size[1] > d + 0.05]
        if not supports:
            return None
        for _ in range(tries):
            host = supports[int(self.rng.integers(len(supports)))]
            hw, hd, hh = host.model.size
            lx = self.rng.uniform(-(hw - w) / 2 + 0.02, (hw - w) / 2 - 0.02)
            ly = self.rng.uniform(-(hd - d) / 2 + 0.02, (hd - d) / 2 - 0.02)
            yaw_local = self.rng.normal(0, 0.3)
            # keep the object's rotated footprint inside the host's footprint
            c, s = math.cos(yaw_local), math.sin(yaw_local)
            ew = abs(c) * w + abs(s) * d
            ed = abs(s) * w + abs(c) * d
            if abs(lx) + ew / 2 > hw / 2 - 0.01 or abs(ly) + ed / 2 > hd / 2 - 0.01:
                continue
            box = (lx - ew / 2 - 0.02, ly - ed / 2 - 0.02, lx + ew / 2 + 0.02, ly + ed / 2 + 0.02)
            if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
                   for b in host.on_top):
                continue
            gx, gy = np.meshgrid(np.linspace(box[0] + 0.02, box[2] - 0.02, 4),
                                 np.linspace(box[1] + 0.02, box[3] - 0.02, 4))
            pts = np.stack([gx.ravel(), gy.ravel()], 1)
            top = ray_heights(self.meshes(host.model), pts, hh + 0.05, h, self._ray_cache)
            if top is None:
                continue
            hc, hs = math.cos(host.yaw), math.sin(host.yaw)
            center = host.pos[:2] + np.array([hc * lx - hs * ly, hs * lx + hc * ly])
            host.on_top.append(box)
            return self._new(model, center, host.yaw + yaw_local, z=top,
                             support=host.instance_id)
        return None


def small_enough(model: CatalogModel) -> bool:
    """Whether a model can stand on a table or shelf."""
    w, d, h = model.size
    return h <= 0.6 and w <= 0.7 and d <= 0.6


def furnish(room: Room, rng: np.random.Generator, models: dict[str, list[CatalogModel]],
            meshes: Callable[[CatalogModel], MeshAsset], min_objects: int,
            max_objects: int) -> list[Placed]:
    """Fill the room: themed large furniture first (walls, then floor), then small objects."""
    placer = Placer(room, rng, models, meshes)
    target = int(rng.integers(min_objects, max_objects + 1))
    big_budget = max(1, round(target * rng.uniform(0.5, 0.7)))
    wishes: list[tuple[str, Rect]] = []
    for rect in room.rects:
        for cls, lo, hi in THEMES[rect.theme]:
            if cls in models:
                wishes += [(cls, rect)] * int(rng.integers(lo, hi + 1))
    # the first entry of each theme (sofa, bed, desk...) is its anchor; place anchors first
    order = sorted(range(len(wishes)), key=lambda k: (
        CLASS_ROLE.get(wishes[k][0]) != "wall", wishes[k][0] in COMPANIONS, rng.random()))
    n_big = 0
    for k in order:
        if n_big >= big_budget:
            break
        cls, rect = wishes[k]
        cands = models[cls] if CLASS_ROLE[cls] != "top" else []
        if not cands:
            continue
        model = cands[int(rng.integers(len(cands)))]
        role = CLASS_ROLE[cls]
        p = placer.place_wall(model, rect) if role == "wall" else placer.place_floor(model, rect)
        if p is None and role == "floor":
            p = placer.place_wall(model, rect)
        n_big += p is not None
    small = [m for c in TOP_CLASSES if c in models for m in models[c] if small_enough(m)]
    misses = 0
    while len(placer.placed) < target and small and misses < 12:
        model = small[int(rng.integers(len(small)))]
        p = placer.place_on(model)
        if p is None and CLASS_ROLE.get(model.cls) == "floor":
            p = placer.place_floor(model, room.rects[int(rng.integers(len(room.rects)))])
        misses += p is None
    # rooms too small for their theme still get enough objects: add floor objects anywhere
    extra = [m for c, ms in models.items() if CLASS_ROLE.get(c) in ("floor", "wall") for m in ms]
    misses = 0
    while len(placer.placed) < min_objects and misses < 20:
        model = extra[int(rng.integers(len(extra)))]
        rect = room.rects[int(rng.integers(len(room.rects)))]
        fn = placer.place_wall if CLASS_ROLE[model.cls] == "wall" else placer.place_floor
        misses += fn(model, rect) is None
    if placer._reserved is not None:
        placer.occ[placer._reserved] = False
    room.occupancy = placer.occ  # type: ignore[attr-defined]
    log.debug("placed %d objects (target %d)", len(placer.placed), target)
    return placer.placed


def _true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True in a 1-D bool array as (start, end) with end exclusive: one quad per run
    instead of one per grid cell keeps the room meshes small."""
    runs: list[tuple[int, int]] = []
    n = len(mask)
    i = 0
    while i < n:
        if not mask[i]:
            i += 1
            continue
        k = i
        while k < n and mask[k]:
            k += 1
        runs.append((i, k))
        i = k
    return runs


def structure_meshes(room: Room) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Floor, ceiling, walls (and door lintel) as (vertices float32 [V,3], faces int32 [F,3])."""
    f = room.floor
    nx, ny = f.shape
    H = room.height

    def quads(q: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        V = np.concatenate(q).astype(np.float32)
        n = len(q)
        base = (np.arange(n) * 4)[:, None]
        F = np.concatenate([base + np.array([0, 1, 2]), base + np.array([0, 2, 3])])
        F = F.astype(np.int32)
        return V, F

    floor_q, ceil_q, wall_q = [], [], []
    for j in range(ny):  # floor and ceiling: merged runs along x, one quad per run
        for i, k in _true_runs(f[:, j]):
            x0, x1, y0, y1 = i * CELL, k * CELL, j * CELL, (j + 1) * CELL
            floor_q.append(np.array([[x0, y0, 0], [x1, y0, 0], [x1, y1, 0], [x0, y1, 0]]))
            ceil_q.append(np.array([[x0, y0, H], [x0, y1, H], [x1, y1, H], [x1, y0, H]]))
    pad = np.zeros((nx + 2, ny + 2), bool)
    pad[1:-1, 1:-1] = f
    # walls: boundary edges merged into runs; horizontal edges (normal +-y), then vertical
    for j in range(ny):
        for side in (-1, 1):
            edge = pad[1:-1, j + 1] & ~pad[1:-1, j + 1 + side]
            for i, k in _true_runs(edge):
                y = (j if side < 0 else j + 1) * CELL
                x0, x1 = i * CELL, k * CELL
                wall_q.append(np.array([[x0, y, 0], [x1, y, 0], [x1, y, H], [x0, y, H]]))
    for i in range(nx):
        for side in (-1, 1):
            edge = pad[i + 1, 1:-1] & ~pad[i + 1 + side, 1:-1]
            for j, k in _true_runs(edge):
                x = (i if side < 0 else i + 1) * CELL
                y0, y1 = j * CELL, k * CELL
                wall_q.append(np.array([[x, y0, 0], [x, y1, 0], [x, y1, H], [x, y0, H]]))
    out = {"floor": quads(floor_q), "ceiling": quads(ceil_q), "wall": quads(wall_q)}
    if room.lintel is not None:
        x0, y0, x1, y1 = room.lintel
        z0 = DOOR_HEIGHT
        out["lintel"] = quads([
            np.array([[x0, y0, z0], [x1, y0, z0], [x1, y1, z0], [x0, y1, z0]]),
            np.array([[x0, y0, z0], [x1, y0, z0], [x1, y0, H], [x0, y0, H]]),
            np.array([[x0, y1, z0], [x1, y1, z0], [x1, y1, H], [x0, y1, H]]),
        ])
    return out
