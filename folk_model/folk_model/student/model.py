"""The 3D student network: voxelisation, a sparse-convolution UNet, per-voxel and per-instance
heads.

Shapes used below: N points, M voxels (after voxelisation, summed over the batch), C feature
channels, K instances, D embedding dimension.

All heads work on voxels; a point takes the outputs of its voxel (``point2voxel``). Scene
clouds are usually voxelised at the same size already, so points and voxels are near 1:1.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from folk_model.config import StudentConfig
from folk_model.student.spconv_compat import import_spconv

logger = logging.getLogger(__name__)

spconv = import_spconv()

GEOM_DIM = 7  # per-instance geometry descriptor: extents (3), z min, z max, log #voxels, 1


@dataclass
class VoxelBatch:
    """Voxelised points of one or more samples.

    Attributes:
        coords: int32 [M, 4] (batch index, x, y, z) integer voxel coordinates, each >= 0.
        feats: float32 [M, in_channels] mean colour in [-1, 1] and centred xyz in metres.
        centers: float32 [M, 3] mean xyz of each voxel's points (metres, input frame).
        counts: int64 [M] points per voxel.
        point2voxel: int64 [N] voxel index of every input point.
        spatial_shape: [3] grid size (x, y, z) covering every sample.
        batch_size: number of samples.
    """

    coords: torch.Tensor
    feats: torch.Tensor
    centers: torch.Tensor
    counts: torch.Tensor
    point2voxel: torch.Tensor
    spatial_shape: list[int]
    batch_size: int


def voxelize(
    points: torch.Tensor,
    colors: torch.Tensor,
    voxel_size: float,
    batch_index: torch.Tensor | None = None,
) -> VoxelBatch:
    """Voxelise points [N, 3] (float, metres) with colours [N, 3] (uint8 or float in 0..255).

    ``batch_index`` int64 [N] assigns points to samples (default: all in sample 0). Each sample
    is shifted so its grid starts at 0; features are the voxel's mean colour scaled to [-1, 1]
    and its centroid relative to the sample's xy centre (z kept, so height is a feature).

    Voxels are centred on multiples of ``voxel_size`` (cell k holds [k - 1/2, k + 1/2) voxels):
    in the floor frame the floor is the plane z = 0, and a grid with a boundary at z = 0 cut
    every floor into two half-filled layers at random, point by point, with the sensor's
    noise; centred, a floor within half a voxel of its plane is one layer.
    """
    device = points.device
    n = points.shape[0]
    if batch_index is None:
        batch_index = torch.zeros(n, dtype=torch.long, device=device)
    pts = points.float()
    col = colors.float() / 127.5 - 1.0
    batch_size = int(batch_index.max().item()) + 1 if n else 1
    grid = torch.floor(pts / voxel_size + 0.5).long()
    gmin = torch.zeros((batch_size, 3), dtype=torch.long, device=device)
    if n:
        gmin = gmin.fill_(2**40).scatter_reduce(
            0, batch_index[:, None].expand(-1, 3), grid, reduce="amin", include_self=True
        )
    grid = grid - gmin[batch_index]
    extent = (grid.max(0).values + 1) if n else torch.ones(3, dtype=torch.long, device=device)
    ex, ey, ez = (int(v) for v in extent.tolist())
    key = ((batch_index * ex + grid[:, 0]) * ey + grid[:, 1]) * ez + grid[:, 2]
    uniq, inv = torch.unique(key, return_inverse=True)
    m = uniq.shape[0]
    counts = torch.zeros(m, dtype=torch.long, device=device).index_add_(
        0, inv, torch.ones_like(inv)
    )
    sums = torch.zeros((m, 6), dtype=torch.float32, device=device).index_add_(
        0, inv, torch.cat([pts, col], 1)
    )
    mean = sums / counts.clamp(min=1)[:, None].float()
    centers = mean[:, :3]
    vz = uniq % ez
    vy = (uniq // ez) % ey
    vx = (uniq // (ez * ey)) % ex
    vb = uniq // (ez * ey * ex)
    coords = torch.stack([vb, vx, vy, vz], 1).int()
    # centre each sample in xy so that features do not depend on where the room is
    bsum = torch.zeros((batch_size, 3), device=device).index_add_(0, vb, centers)
    bcnt = torch.zeros(batch_size, device=device).index_add_(0, vb, torch.ones_like(vb).float())
    bmean = bsum / bcnt.clamp(min=1)[:, None]
    rel = centers - bmean[vb] * torch.tensor([1.0, 1.0, 0.0], device=device)
    feats = torch.cat([mean[:, 3:], rel], 1)
    # spconv needs a spatial shape divisible through the UNet's stride-2 levels
    shape = [int(((s + 15) // 16) * 16) for s in (ex, ey, ez)]
    return VoxelBatch(coords, feats, centers, counts, inv, shape, batch_size)


def quarter_turn(quarter_turns: int) -> tuple[int, int]:
    """(cos, sin) of ``quarter_turns`` x 90 degrees, exact: R = [[c, -s, 0], [s, c, 0],
    [0, 0, 1]] turns about z."""
    return ((1, 0), (0, 1), (-1, 0), (0, -1))[int(quarter_turns) % 4]


def turned(vb: VoxelBatch, quarter_turns: int) -> VoxelBatch:
    """``vb`` turned about z by ``quarter_turns`` x 90 degrees, voxel for voxel: row i of
    the result is row i of ``vb``, so outputs need no matching back.

    The same voxels (up to float rounding in the features) as voxelising the turned points,
    because a quarter turn maps a grid centred on multiples of the voxel size onto itself;
    each sample's grid again starts at 0, so the strided levels pair voxels as they would.
    Why not voxelise again: test-time turns (``StudentConfig.tta_rotations``) then cost one
    network pass each and nothing else.
    """
    k = int(quarter_turns) % 4
    c, s = quarter_turn(k)
    device = vb.coords.device
    co = vb.coords.long()
    b, x, y = co[:, 0], co[:, 1], co[:, 2]
    xy = torch.stack([c * x - s * y, s * x + c * y], 1)
    gmin = torch.full((vb.batch_size, 2), 2**40, dtype=torch.long, device=device)
    gmin = gmin.scatter_reduce(0, b[:, None].expand(-1, 2), xy, reduce="amin", include_self=True)
    xy = xy - gmin[b]
    coords = torch.cat([b[:, None], xy, co[:, 3:4]], 1).int()
    rot = torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=vb.centers.dtype, device=device)
    feats = torch.cat([vb.feats[:, :3], vb.feats[:, 3:] @ rot.T], 1)
    shape = list(vb.spatial_shape)
    if k % 2:
        shape[0], shape[1] = shape[1], shape[0]
    return VoxelBatch(coords, feats, vb.centers @ rot.T, vb.counts, vb.point2voxel, shape,
                      vb.batch_size)


class ResBlock(nn.Module):
    """Two 3x3x3 submanifold convolutions with a residual connection; C -> C."""

    def __init__(self, channels: int, key: str) -> None:
        super().__init__()
        self.conv1 = spconv.SubMConv3d(channels, channels, 3, padding=1, bias=False, indice_key=key)
        self.bn1 = nn.BatchNorm1d(channels)
        self.conv2 = spconv.SubMConv3d(channels, channels, 3, padding=1, bias=False, indice_key=key)
        self.bn2 = nn.BatchNorm1d(channels)

    def forward(self, x):  # type: ignore[no-untyped-def]
        """x: SparseConvTensor with features [M, C] -> same shape."""
        y = self.conv1(x)
        y = y.replace_feature(F.relu(self.bn1(y.features)))
        y = self.conv2(y)
        y = y.replace_feature(F.relu(self.bn2(y.features) + x.features))
        return y


class SparseUNet(nn.Module):
    """A sparse UNet. Level 0 (the input voxel size) has only the stem and a pointwise skip
    fusion, which keeps the cost of the finest, largest level low; every deeper level has one
    residual block; stride-2 down / inverse up; skip connections concatenated.

    Input: SparseConvTensor with features [M, in_channels]; output: features [M, channels[0]]
    on the input voxels.
    """

    def __init__(self, in_channels: int, channels: Sequence[int]) -> None:
        super().__init__()
        ch = list(channels)
        if len(ch) < 2:
            raise ValueError(f"SparseUNet needs at least 2 levels, got channels={ch}")
        self.stem = spconv.SparseSequential(
            spconv.SubMConv3d(in_channels, ch[0], 3, padding=1, bias=False, indice_key="subm0"),
            nn.BatchNorm1d(ch[0]),
            nn.ReLU(),
        )
        self.enc = nn.ModuleList(
            [nn.Identity()] + [ResBlock(c, f"subm{i}") for i, c in enumerate(ch) if i > 0]
        )
        self.down = nn.ModuleList(
            [
                spconv.SparseSequential(
                    spconv.SparseConv3d(ch[i], ch[i + 1], 2, stride=2, bias=False,
                                        indice_key=f"down{i}"),
                    nn.BatchNorm1d(ch[i + 1]),
                    nn.ReLU(),
                )
                for i in range(len(ch) - 1)
            ]
        )
        self.up = nn.ModuleList(
            [
                spconv.SparseSequential(
                    spconv.SparseInverseConv3d(ch[i + 1], ch[i], 2, bias=False,
                                               indice_key=f"down{i}"),
                    nn.BatchNorm1d(ch[i]),
                    nn.ReLU(),
                )
                for i in range(len(ch) - 1)
            ]
        )
        fuse: list[nn.Module] = [
            nn.Sequential(nn.Linear(2 * ch[0], ch[0], bias=False), nn.BatchNorm1d(ch[0]),
                          nn.ReLU())
        ]
        fuse += [
            spconv.SparseSequential(
                spconv.SubMConv3d(2 * ch[i], ch[i], 3, padding=1, bias=False,
                                  indice_key=f"subm{i}"),
                nn.BatchNorm1d(ch[i]),
                nn.ReLU(),
            )
            for i in range(1, len(ch) - 1)
        ]
        self.fuse = nn.ModuleList(fuse)

    def forward(self, x):  # type: ignore[no-untyped-def]
        """x: SparseConvTensor [M, in_channels] -> SparseConvTensor [M, channels[0]]."""
        x = self.stem(x)
        skips = []
        for i, block in enumerate(self.enc):
            if i > 0:
                x = block(x)
            if i < len(self.down):
                skips.append(x)
                x = self.down[i](x)
        for i in reversed(range(len(self.up))):
            x = self.up[i](x)
            cat = torch.cat([x.features, skips[i].features], 1)
            if i == 0:
                x = x.replace_feature(self.fuse[0](cat))
            else:
                x = self.fuse[i](x.replace_feature(cat))
        return x


def _mlp(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, hidden), nn.LayerNorm(hidden), nn.ReLU(),
                         nn.Linear(hidden, cout))


@dataclass
class VoxelOutputs:
    """Per-voxel outputs of the student.

    Attributes:
        fg_logit: float [M] foreground (any object) logit.
        offset: float [M, 3] predicted vector from the voxel centre to its instance centre (m).
        feat: float [M, C] voxel features pooled by the instance heads.
    """

    fg_logit: torch.Tensor
    offset: torch.Tensor
    feat: torch.Tensor


class FolkStudent(nn.Module):
    """Sparse UNet + foreground/offset/feature heads + instance score and embedding heads."""

    def __init__(self, cfg: StudentConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c0 = cfg.channels[0]
        fd = cfg.feat_dim
        self.backbone = SparseUNet(cfg.in_channels, cfg.channels)
        self.fg_head = _mlp(c0, c0, 1)
        self.offset_head = _mlp(c0, c0, 3)
        self.feat_head = nn.Sequential(nn.Linear(c0, fd), nn.LayerNorm(fd), nn.ReLU())
        self.score_head = _mlp(2 * fd + GEOM_DIM, cfg.head_hidden // 2, 1)
        self.embed_head = nn.Sequential(
            nn.Linear(2 * fd + GEOM_DIM, cfg.head_hidden), nn.LayerNorm(cfg.head_hidden),
            nn.ReLU(), nn.Linear(cfg.head_hidden, cfg.head_hidden), nn.ReLU(),
            nn.Linear(cfg.head_hidden, cfg.embed_dim),
        )
        # Per-voxel embedding, trained densely on every voxel of an annotated instance (one
        # instance gives hundreds of targets instead of one), so that the features the
        # instance heads pool carry semantics. Training only: instances are named by
        # embed_head, which also sees the instance's extent.
        self.voxel_embed_head = nn.Linear(fd, cfg.embed_dim)

    def forward_voxels(self, vb: VoxelBatch) -> VoxelOutputs:
        """Run the UNet and per-voxel heads on a voxel batch (M voxels)."""
        x = spconv.SparseConvTensor(vb.feats, vb.coords, vb.spatial_shape, vb.batch_size)
        f = self.backbone(x).features
        return VoxelOutputs(
            fg_logit=self.fg_head(f).squeeze(1),
            offset=self.offset_head(f),
            feat=self.feat_head(f),
        )

    def pool(
        self, feat: torch.Tensor, centers: torch.Tensor, inst_voxels: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """Pool voxel features [M, C] over K instances (each an int64 tensor of voxel indices)
        into [K, 2C + GEOM_DIM]: mean, max and a geometry descriptor of the instance."""
        k = len(inst_voxels)
        c = feat.shape[1]
        if k == 0:
            return feat.new_zeros((0, 2 * c + GEOM_DIM))
        idx = torch.cat(list(inst_voxels))
        seg = torch.repeat_interleave(
            torch.arange(k, device=feat.device),
            torch.tensor([len(v) for v in inst_voxels], device=feat.device),
        )
        cnt = torch.zeros(k, device=feat.device).index_add_(0, seg, torch.ones_like(seg).float())
        mean = feat.new_zeros((k, c)).index_add_(0, seg, feat[idx]) / cnt.clamp(min=1)[:, None]
        mx = feat.new_zeros((k, c)).scatter_reduce(
            0, seg[:, None].expand(-1, c), feat[idx], reduce="amax", include_self=False
        )
        p = centers[idx].detach()
        lo = p.new_full((k, 3), 1e9).scatter_reduce(0, seg[:, None].expand(-1, 3), p, "amin")
        hi = p.new_full((k, 3), -1e9).scatter_reduce(0, seg[:, None].expand(-1, 3), p, "amax")
        geom = torch.cat(
            [hi - lo, lo[:, 2:3], hi[:, 2:3], torch.log1p(cnt)[:, None] / 10.0,
             torch.ones_like(cnt)[:, None]], 1
        )
        return torch.cat([mean, mx, geom], 1)

    def voxel_embeddings(self, feat: torch.Tensor) -> torch.Tensor:
        """Voxel features [M, C] -> unit per-voxel embeddings [M, D] (dense distillation)."""
        return F.normalize(self.voxel_embed_head(feat), dim=1)

    def instance_heads(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled instance features [K, P] -> (score logit [K], unit embedding [K, D])."""
        score = self.score_head(pooled).squeeze(1)
        emb = F.normalize(self.embed_head(pooled), dim=1)
        return score, emb


# Parameters that only training uses: weights files written before they existed still load.
TRAINING_ONLY_PREFIXES = ("voxel_embed_head.",)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
