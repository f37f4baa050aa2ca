"""What the node publishes, measured: a scene's frames replayed through the node's own fusion
(``folk_model.fusion.replay``), ground truth carried onto the fused map (nearest scan vertex
within 5 cm), so that the same evaluator scores the fused map exactly as it scores the mesh.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from folk_model.config import FusionConfig
from folk_model.fusion.replay import GT_TRANSFER_MAX_DIST, fuse_scene


def fused_scene(scene: Any, cfg: FusionConfig | None = None,
                max_dist: float = GT_TRANSFER_MAX_DIST) -> Any:
    """A copy of ``scene`` whose cloud and GT are the node's fused map of its frames."""
    f = fuse_scene(scene, cfg, max_dist=max_dist)
    meta = dict(scene.meta or {})
    meta["cloud"] = {"kind": "fused map", "frames_fused": f.frames_fused,
                     "fusion": dataclasses.asdict(cfg or FusionConfig()),
                     "gt_transfer_max_dist": max_dist}
    return dataclasses.replace(scene, points=f.points, colors=f.colors,
                               instance_ids=f.instance_ids, semantic_ids=f.semantic_ids,
                               meta=meta)


__all__ = ["fused_scene"]
