"""CPU rendering with open3d's RaycastingScene: RGB (textured, shaded), depth and instance ids.

One ray per pixel through the pixel centre convention of ScanNet / OpenCV (pixel (u, v) at
integer coordinates). Rays are built as ``K^-1 [u, v, 1]`` rotated into the world, not
normalised, so the hit distance ``t`` is directly the depth along the optical axis.

Colour = albedo x shading. Albedo comes from the model's texture (sampled at the hit's UV,
interpolated from the triangle's corner UVs with the barycentric coordinates the ray caster
returns) or its material colour; walls and floors get a procedural paint / parquet / tile
pattern. Shading is a head-light term plus a soft sky term, enough to see shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .catalog import MeshAsset

STRUCTURE_KINDS = ("floor", "wall", "ceiling", "lintel")


def ray_heights(mesh: MeshAsset, pts_xy: np.ndarray, z_from: float, clearance: float,
                cache: dict | None = None) -> float | None:
    """Top surface height of ``mesh`` under all of ``pts_xy`` (model frame), or None.

    None when a ray misses, the surface under the points is not flat (> 1.5 cm spread), or the
    mesh has something less than ``clearance`` above the surface (a shelf board). ``cache``
    keeps built ray-casting scenes per mesh (the caller must keep the meshes alive).
    """
    import open3d as o3d

    key = id(mesh)
    scene = cache.get(key) if cache is not None else None
    if scene is None:
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(mesh.vertices),
                            o3d.core.Tensor(mesh.faces.astype(np.uint32)))
        if cache is not None:
            cache[key] = scene
    n = len(pts_xy)
    down = np.zeros((n, 6), np.float32)
    down[:, :2] = pts_xy
    down[:, 2] = z_from
    down[:, 5] = -1
    t = scene.cast_rays(o3d.core.Tensor(down))["t_hit"].numpy()
    if not np.all(np.isfinite(t)):
        return None
    z = z_from - t
    if z.max() - z.min() > 0.015 or z.max() < 0.05:
        return None
    top = float(z.max())
    up = down.copy()
    up[:, 2] = top + 0.003
    up[:, 5] = 1
    tu = scene.cast_rays(o3d.core.Tensor(up))["t_hit"].numpy()
    if np.any(tu < clearance + 0.01):
        return None
    return top + 0.002


@dataclass
class Frame:
    """One rendered frame.

    Attributes:
        rgb: uint8 [H, W, 3].
        depth: float32 [H, W] metres, 0 where nothing was hit.
        instance: int32 [H, W] object instance id, 0 = structure or nothing.
        kind: int8 [H, W] -1 nothing, 0 object, 1+ index into STRUCTURE_KINDS + 1.
    """

    rgb: np.ndarray
    depth: np.ndarray
    instance: np.ndarray
    kind: np.ndarray


class Renderer:
    """A scene of structure meshes and placed object meshes, rendered frame by frame."""

    def __init__(self, structure: dict[str, tuple[np.ndarray, np.ndarray]],
                 objects: list[tuple[int, MeshAsset, np.ndarray]],
                 palette: dict[str, np.ndarray], floor_pattern: str, seed: int) -> None:
        """``objects``: (instance id, mesh, 4x4 model-to-world); ``palette``: kind -> RGB 0..1."""
        import open3d as o3d

        self._o3d = o3d
        self.scene = o3d.t.geometry.RaycastingScene()
        n_geo = len(structure) + len(objects)
        self.geo_instance = np.zeros(n_geo + 1, np.int32)
        self.geo_kind = np.full(n_geo + 1, -1, np.int8)
        self.geo_face0 = np.zeros(n_geo + 1, np.int64)
        self.palette = palette
        self.floor_pattern = floor_pattern
        self.seed = seed
        for name, (V, F) in structure.items():
            gid = self.scene.add_triangles(o3d.core.Tensor(V.astype(np.float32)),
                                           o3d.core.Tensor(F.astype(np.uint32)))
            self.geo_kind[gid] = STRUCTURE_KINDS.index(name) + 1
        uvs, mats, colors, texs, textures = [], [], [], [], []
        f0 = m0 = t0 = 0
        for inst, mesh, T in objects:
            V = mesh.vertices.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
            gid = self.scene.add_triangles(o3d.core.Tensor(V.astype(np.float32)),
                                           o3d.core.Tensor(mesh.faces.astype(np.uint32)))
            self.geo_instance[gid] = inst
            self.geo_kind[gid] = 0
            self.geo_face0[gid] = f0
            uvs.append(mesh.face_uv)
            mats.append(mesh.face_mat + m0)
            colors.append(mesh.mat_color)
            texs.append(np.where(mesh.mat_tex >= 0, mesh.mat_tex + t0, -1))
            textures += mesh.textures
            f0 += len(mesh.faces)
            m0 += len(mesh.mat_color)
            t0 += len(mesh.textures)
        self.face_uv = np.concatenate(uvs) if uvs else np.zeros((0, 3, 2), np.float32)
        self.face_mat = np.concatenate(mats) if mats else np.zeros(0, np.int32)
        self.mat_color = np.concatenate(colors) if colors else np.zeros((0, 3), np.float32)
        self.mat_tex = np.concatenate(texs) if texs else np.zeros(0, np.int32)
        self.textures = textures
        self._rays_cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def _cam_dirs(self, K: np.ndarray, w: int, h: int) -> np.ndarray:
        key = (w, h, *K.ravel().tolist())
        if key not in self._rays_cache:
            u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
            d = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
            d = d.reshape(-1, 3).astype(np.float32)
            inv_norm = (1.0 / np.linalg.norm(d, axis=1)).astype(np.float32)
            self._rays_cache = {key: (d, inv_norm)}
        return self._rays_cache[key]

    def render(self, K: np.ndarray, pose: np.ndarray, w: int, h: int) -> Frame:
        """Render one frame; ``pose`` is camera-to-world (OpenCV axes: x right, y down, z fwd)."""
        o3d = self._o3d
        dirs_c, inv_norm = self._cam_dirs(K, w, h)
        rays = np.empty((len(dirs_c), 6), np.float32)
        rays[:, :3] = pose[:3, 3]
        rays[:, 3:] = dirs_c @ pose[:3, :3].T.astype(np.float32)
        dirs = rays[:, 3:]
        out = self.scene.cast_rays(o3d.core.Tensor(rays))
        t = out["t_hit"].numpy()
        gid = out["geometry_ids"].numpy().astype(np.int64)
        prim = out["primitive_ids"].numpy().astype(np.int64)
        bary = out["primitive_uvs"].numpy()
        normal = out["primitive_normals"].numpy()
        hit = np.isfinite(t)
        gid = np.where(hit, gid, len(self.geo_kind) - 1)
        kind = self.geo_kind[gid]
        inst = self.geo_instance[gid]
        albedo = np.zeros((len(t), 3), np.float32)

        obj = np.nonzero(kind == 0)[0]
        if len(obj):
            face = self.geo_face0[gid[obj]] + prim[obj]
            mat = self.face_mat[face]
            albedo[obj] = self.mat_color[mat]
            tex = self.mat_tex[mat]
            has = tex >= 0
            if has.any():
                sel, ftex = obj[has], tex[has]
                b = bary[sel]
                corner = self.face_uv[face[has]]  # [n, 3, 2]
                uv = (1 - b[:, :1] - b[:, 1:2]) * corner[:, 0] + b[:, :1] * corner[:, 1] \
                    + b[:, 1:2] * corner[:, 2]
                for k in np.unique(ftex):
                    m = ftex == k
                    img = self.textures[k]
                    th, tw = img.shape[:2]
                    x = (np.mod(uv[m, 0], 1.0) * tw).astype(np.int64).clip(0, tw - 1)
                    y = ((1 - np.mod(uv[m, 1], 1.0)) * th).astype(np.int64).clip(0, th - 1)
                    albedo[sel[m]] = img[y, x] / 255.0
        for k, name in enumerate(STRUCTURE_KINDS, start=1):
            m = np.nonzero(kind == k)[0]
            if len(m):
                pts = rays[m, :3] + rays[m, 3:] * t[m, None]
                albedo[m] = self._structure_albedo(name, pts)

        # shading: head light (|n . view|) + sky light from above + a little distance fall-off
        ndv = np.abs(np.einsum("ij,ij->i", normal, dirs)) * inv_norm
        dist = np.where(hit, t, np.float32(0))
        shade = (0.30 + 0.55 * ndv + 0.20 * np.abs(normal[:, 2])) \
            * np.clip(1.08 - 0.035 * dist, 0.75, 1.05)
        shade[~hit] = 0
        rgb = np.minimum(albedo * (shade[:, None] * 255), 255) + 0.5
        return Frame(
            rgb=rgb.astype(np.uint8).reshape(h, w, 3),
            depth=dist.astype(np.float32).reshape(h, w),
            instance=np.where(hit, inst, 0).astype(np.int32).reshape(h, w),
            kind=np.where(hit, kind, -1).astype(np.int8).reshape(h, w))

    def _structure_albedo(self, name: str, p: np.ndarray) -> np.ndarray:
        """Procedural albedo for walls (paint), floors (parquet or tiles) and the ceiling."""
        base = self.palette[name].astype(np.float32)
        if name == "floor" and self.floor_pattern == "parquet":
            plank = np.floor(p[:, 0] / 0.14)
            seg = np.floor((p[:, 1] + _hash(plank, self.seed) * 1.2) / 1.2)
            tone = 0.82 + 0.3 * _hash(plank * 131 + seg, self.seed)
            grain = 0.04 * np.sin(p[:, 1] * 60 + plank * 7)
            gap = (np.mod(p[:, 0], 0.14) < 0.004).astype(np.float32)
            f = tone + grain - 0.35 * gap
        elif name == "floor":
            grout = (np.mod(p[:, 0], 0.4) < 0.008) | (np.mod(p[:, 1], 0.4) < 0.008)
            tone = 0.93 + 0.1 * _hash(np.floor(p[:, 0] / 0.4) * 97 + np.floor(p[:, 1] / 0.4),
                                      self.seed)
            f = np.where(grout, 0.6, tone)
        elif name in ("wall", "lintel"):
            skirting = p[:, 2] < 0.08
            f = np.where(skirting, 0.75, 0.97 + 0.03 * np.sin(p[:, 2] * 3.0))
        else:
            f = np.ones(len(p), np.float32)
        return np.clip(base[None, :] * f[:, None], 0, 1)


def _hash(x: np.ndarray, seed: int) -> np.ndarray:
    """A cheap deterministic pseudo-random number in [0, 1) per value of ``x``."""
    v = np.sin(x * 12.9898 + seed * 78.233) * 43758.5453
    return (v - np.floor(v)).astype(np.float32)


def add_depth_noise(depth: np.ndarray, rng: np.random.Generator, max_depth: float
                    ) -> np.ndarray:
    """Kinect-like depth: axial noise growing with distance, holes at edges and at random.

    Noise model after Nguyen et al. 2012 (sigma = 1.2 mm + 1.9 mm (z - 0.4)^2); pixels on depth
    discontinuities are dropped half the time, as a structured-light sensor does.
    """
    z = depth.astype(np.float32)
    valid = z > 0
    sigma = 0.0012 + 0.0019 * (z - 0.4) ** 2
    noisy = z + rng.standard_normal(z.shape).astype(np.float32) * sigma
    edge = np.zeros_like(valid)
    dz_x = np.abs(np.diff(z, axis=1)) > 0.06 * np.maximum(z[:, 1:], 0.5)
    dz_y = np.abs(np.diff(z, axis=0)) > 0.06 * np.maximum(z[1:, :], 0.5)
    edge[:, 1:] |= dz_x
    edge[:, :-1] |= dz_x
    edge[1:, :] |= dz_y
    edge[:-1, :] |= dz_y
    drop = (edge & (rng.random(z.shape) < 0.5)) | (rng.random(z.shape) < 0.005)
    out = np.where(valid & ~drop & (noisy < max_depth) & (noisy > 0.2), noisy, 0)
    return out.astype(np.float32)
