"""The student on real RGB-D frames: organized point clouds from a real depth camera.

    python bench/bench_real_frames.py FRAME.pcd [FRAME.pcd ...] --out out/real_frames

Each frame is an organized (640x480) PCD in the camera's optical frame (x right, y down,
z forward), as PCL's OpenNI grabber writes them; PCL's own test data has real Kinect frames
of an office, objects on a carpet and a desk (``test/office1.pcd``,
``test/milk_cartoon_all_small_clorox.pcd``, ``test/grabber_sequences/pcd/*.pcd`` in
PointCloudLibrary/pcl). They are not part of this repository.

What it does, per frame, as a robot would see it:
1. gravity: a robot's TF gives the camera's tilt; a frame alone does not. The frame is turned
   so that its largest plane within 60 degrees of level (the floor or a table top, found by
   RANSAC) is horizontal. The student then estimates its own floor as in every other run.
2. the shipped student segments the cloud and names its instances with the node's default
   vocabulary (``--vocabulary`` to change it).
3. it prints, for instances scoring >= ``--min-score`` (what a user keeps): how many, the
   largest share of the frame's points one took, and how much of the levelling plane went
   into instances (a floor or table top must not be an object); every instance with its
   label, score and size.
4. it writes ``<frame>_overlay.png`` (the image beside it with the instances painted in) and
   ``real_frames.json`` into ``--out``.

There is no ground truth for these frames: the figures say whether the proposals separate
the floor from the objects and the objects from each other, not how well they match.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from bench_common import DEFAULT_WEIGHTS, ROOT


def read_organized_pcd(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Points float32 [H*W, 3] (NaN where the camera saw nothing), colours uint8 [H*W, 3]
    and (H, W) of an organized PCD."""
    import open3d as o3d

    header = path.read_bytes()[:2048].decode("ascii", "replace")
    dims = {k: int(v) for k, v in (ln.split()[:2] for ln in header.splitlines()
                                   if ln.split()[:1] in (["WIDTH"], ["HEIGHT"]))}
    h, w = dims.get("HEIGHT", 1), dims.get("WIDTH", 0)
    if h <= 1:
        raise ValueError(f"{path}: not an organized cloud (HEIGHT {h}); need a depth frame")
    pc = o3d.io.read_point_cloud(str(path), remove_nan_points=False,
                                 remove_infinite_points=False)
    pts = np.asarray(pc.points, np.float32)
    if len(pts) != h * w or not pc.has_colors():
        raise ValueError(f"{path}: {len(pts)} points for {w}x{h}, colours {pc.has_colors()}")
    cols = np.clip(np.nan_to_num(np.asarray(pc.colors)) * 255 + 0.5, 0, 255).astype(np.uint8)
    return pts, cols, (h, w)


def level(points: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rotation [3, 3] from the optical frame to a z-up frame in which the largest plane
    within 60 degrees of level is horizontal, and the rows of that plane's inliers."""
    import open3d as o3d

    from folk_model.student.floor import _rotation_to_z

    ok = np.flatnonzero(np.isfinite(points).all(1))
    # optical (x right, y down, z forward) -> x right, y forward, z up
    base = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])
    rest = ok
    rng = np.random.default_rng(seed)
    for _ in range(10):  # walls and cabinets first in a room seen from its middle
        pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points[rest] @ base.T))
        o3d.utility.random.seed(int(rng.integers(1 << 30)))
        (a, b, c, _d), inl = pc.segment_plane(0.02, 3, 500)
        n = np.array([a, b, c]) / np.linalg.norm([a, b, c])
        if abs(n[2]) >= np.cos(np.radians(60)):  # a camera pitched up to 60 deg down
            return _rotation_to_z(n if n[2] > 0 else -n) @ base, rest[np.asarray(inl)]
        rest = np.delete(rest, np.asarray(inl))
    raise ValueError("no plane within 60 degrees of level: cannot tell which way is up")


def overlay(colors: np.ndarray, hw: tuple[int, int], masks: list[np.ndarray],
            path: Path) -> None:
    """The frame's image beside the same image with each instance painted in its colour
    (the colours of the node's RViz markers)."""
    from PIL import Image

    from folk_ros.conversions import instance_color

    h, w = hw
    img = colors.reshape(h, w, 3).astype(np.float32)
    out = img * 0.35 + 0.65 * img.mean(2, keepdims=True) * 0.6
    flat = out.reshape(-1, 3)
    for i, m in enumerate(masks):
        flat[m] = 0.3 * flat[m] + 0.7 * 255 * np.array(instance_color(i + 1), np.float32)
    both = np.concatenate([img, out], 1).clip(0, 255).astype(np.uint8)
    Image.fromarray(both).save(path)


def sheet(overlays: list[Path], path: Path, width: int = 560) -> None:
    """The overlays one under another at ``width`` pixels (docs/results/real_frames.png)."""
    from PIL import Image

    rows = []
    for p in overlays:
        im = Image.open(p)
        rows.append(im.resize((width, round(im.height * width / im.width))))
    out = Image.new("RGB", (width, sum(r.height for r in rows)))
    y = 0
    for r in rows:
        out.paste(r, (0, y))
        y += r.height
    out.save(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("frames", nargs="+", type=Path, help="organized PCD files")
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    ap.add_argument("--out", type=Path, default=Path("out/real_frames"))
    ap.add_argument("--vocabulary", nargs="+", default=None,
                    help="default: the node's start-up vocabulary")
    ap.add_argument("--min-score", type=float, default=0.15,
                    help="instances a user keeps (the node's min_score default)")
    args = ap.parse_args(argv)
    if args.vocabulary is None:
        from folk_ros.node import DEFAULT_VOCABULARY

        args.vocabulary = list(DEFAULT_VOCABULARY)

    sys.path.insert(0, str(ROOT / "folk_model"))
    from folk_model.labelling import normalize
    from folk_model.student import load_weights
    from folk_model.vl import create_vl_encoder, load_vl_config

    seg, manifest = load_weights(args.weights, "cpu")
    enc = create_vl_encoder(load_vl_config(None, manifest, "cpu"), text_only=True)
    text = normalize(enc.encode_texts(args.vocabulary))
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"weights": str(args.weights), "vocabulary": args.vocabulary,
              "min_score": args.min_score, "frames": []}
    for path in args.frames:
        pts, cols, hw = read_organized_pcd(path)
        rot, plane = level(pts)
        world = np.full_like(pts, np.nan)
        ok = np.isfinite(pts).all(1)
        world[ok] = pts[ok] @ rot.T.astype(np.float32)
        res = seg.segment(world, cols)
        lab = seg.label(res, text, words=args.vocabulary)
        keep = [i for i, inst in enumerate(res.instances) if inst.score >= args.min_score]
        n_valid = int(ok.sum())
        in_plane = np.zeros(len(pts), bool)
        in_plane[plane] = True
        rows = []
        for i in keep:
            inst = res.instances[i]
            idx = inst.point_indices
            rows.append({"label": args.vocabulary[int(lab.label_index[i])],
                         "label_score": float(lab.score[i]),
                         "score": float(inst.score), "points": len(idx),
                         "share": len(idx) / n_valid,
                         "plane_share": float(in_plane[idx].mean())})
        taken = np.zeros(len(pts), bool)
        for i in keep:
            taken[res.instances[i].point_indices] = True
        rec = {"frame": path.name, "valid_points": n_valid,
               "level_plane_points": len(plane),
               "instances_all": len(res.instances), "instances": len(keep),
               "largest_share": max((r["share"] for r in rows), default=0.0),
               "level_plane_in_instances": float(taken[plane].mean()) if len(plane) else 0.0,
               "seconds": res.timings.get("total", 0.0), "kept": rows}
        report["frames"].append(rec)
        overlay(cols, hw, [res.instances[i].point_indices for i in keep],
                args.out / f"{path.stem}_overlay.png")
        print(f"{path.name}: {n_valid} valid points, levelling plane {len(plane)} points; "
              f"{len(keep)} instances >= {args.min_score} (of {len(res.instances)}), largest "
              f"{100 * rec['largest_share']:.1f}% of the frame; "
              f"{100 * rec['level_plane_in_instances']:.1f}% of the plane in instances; "
              f"{rec['seconds']:.2f} s")
        for r in sorted(rows, key=lambda r: -r["points"]):
            print(f"    {r['label']:<10} label {r['label_score']:.2f}  score {r['score']:.2f}  "
                  f"{r['points']:6d} points ({100 * r['share']:4.1f}%), "
                  f"{100 * r['plane_share']:4.1f}% on the plane")
    (args.out / "real_frames.json").write_text(json.dumps(report, indent=1))
    sheet([args.out / f"{p.stem}_overlay.png" for p in args.frames], args.out / "real_frames.png")
    print(f"wrote {args.out}/real_frames.json, the overlays and real_frames.png (all of them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
