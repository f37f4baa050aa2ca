"""ROS message <-> numpy conversions, with validation that says what is wrong.

sensor_msgs_py and cv_bridge are not assumed (they are absent on pip-only installs); images
and point clouds are plain numpy views of ``msg.data``. Every check raises
:class:`InputError`, which the node counts and logs (throttled) instead of dying.
"""

from __future__ import annotations

import array
import colorsys
import hashlib
from collections.abc import Sequence

import numpy as np
from geometry_msgs.msg import Point, Quaternion, Vector3
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

COLOR_ENCODINGS = ("rgb8", "bgr8")
DEPTH_ENCODINGS = ("16UC1", "32FC1")
_BYTES = {"rgb8": 3, "bgr8": 3, "16UC1": 2, "32FC1": 4, "mono16": 2}


class InputError(ValueError):
    """A malformed input message; ``kind`` names the counter it goes to."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def stamp_ns(header: Header) -> int:
    """A header stamp as integer nanoseconds (exact, comparable, hashable)."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _image_array(msg: Image, channels: int, dtype: np.dtype) -> np.ndarray:
    """View ``msg.data`` as [H, W(, C)] of ``dtype``; checks step, size and endianness."""
    h, w = int(msg.height), int(msg.width)
    if h == 0 or w == 0:
        raise InputError("empty_image", f"{msg.encoding} image is empty ({w}x{h})")
    row = w * channels * dtype.itemsize
    if msg.step < row:
        raise InputError("bad_step", f"{msg.encoding} image step {msg.step} < {row} for width {w}")
    buf = np.frombuffer(msg.data, np.uint8)
    if buf.size < msg.step * h:
        raise InputError(
            "truncated", f"{msg.encoding} image has {buf.size} bytes, needs {msg.step * h}"
        )
    rows = buf[: msg.step * h].reshape(h, msg.step)[:, :row]
    dt = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    arr = np.ascontiguousarray(rows).view(dt).astype(dtype, copy=False)
    return arr.reshape(h, w, channels) if channels > 1 else arr.reshape(h, w)


def color_to_rgb(msg: Image) -> np.ndarray:
    """A colour Image (rgb8 or bgr8) as uint8 RGB [H, W, 3].

    A view of the message's buffer, never a copy (bgr8 is a reversed-channel view): fusion
    reads only every ``pixel_stride``-th pixel, so copying the whole image would be waste.
    """
    if msg.encoding not in COLOR_ENCODINGS:
        raise InputError(
            "bad_encoding",
            f"colour encoding {msg.encoding!r} not supported; publish one of {COLOR_ENCODINGS}",
        )
    rgb = _image_array(msg, 3, np.dtype(np.uint8))
    return rgb[..., ::-1] if msg.encoding == "bgr8" else rgb


def depth_image(msg: Image) -> tuple[np.ndarray, float, int]:
    """A depth Image (16UC1 millimetres or 32FC1 metres) as [H, W] depth and its scale.

    Returns (depth, metres per unit, invalid_count). 16UC1 stays uint16 millimetres (a view
    of the message, scale 0.001): fusion reads it where it lies, so the node makes no float
    copy of every frame. 32FC1 is float32 metres (scale 1.0) in which NaN/inf/negative pixels
    become 0 ("no depth") and are counted. A frame without a single valid pixel is an error.
    """
    if msg.encoding in ("16UC1", "mono16"):
        raw = _image_array(msg, 1, np.dtype(np.uint16))
        # Integers are never NaN or negative: only the "any valid pixel" check is needed.
        if not raw.any():
            raise InputError("no_valid_depth", "depth image has no finite positive value")
        return raw, 0.001, 0
    elif msg.encoding == "32FC1":
        d = _image_array(msg, 1, np.dtype(np.float32)).astype(np.float32, copy=True)
    else:
        raise InputError(
            "bad_encoding",
            f"depth encoding {msg.encoding!r} not supported; publish one of {DEPTH_ENCODINGS} "
            "(16UC1 in millimetres, 32FC1 in metres), registered to the colour image",
        )
    bad = ~np.isfinite(d) | (d < 0)
    n_bad = int(bad.sum())
    if n_bad:
        d[bad] = 0.0
    if not (d > 0).any():
        raise InputError("no_valid_depth", "depth image has no finite positive value")
    return d, 1.0, n_bad


def camera_matrix(info: CameraInfo) -> np.ndarray:
    """The 3x3 K of a CameraInfo; raises when it is unusable (zero focal length)."""
    k = np.asarray(info.k, np.float64).reshape(3, 3)
    if not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise InputError("bad_camera_info", f"camera_info K is unusable: {list(info.k)}")
    return k


DISTORTION_MODES = ("rectify", "rectified")
# Models whose distortion the node can undo (image_geometry / OpenCV conventions).
RECTIFIABLE_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")


class CameraModel:
    """Intrinsics of one camera_info and, for a distorted camera, the map that rectifies it.

    Why here and not in the sync: a driver may publish camera_info once (latched) or at a
    different rate than the images, so the node keeps the latest one per frame id and builds
    this once per distinct camera_info; the per-frame cost is then one gather per image (only
    for a camera with non-zero distortion).

    ``mode`` "rectify": the images are raw; non-zero distortion of a model in
    RECTIFIABLE_MODELS is undone with a nearest-pixel map (depth must not be interpolated
    across edges), with K as the rectified camera matrix. "rectified": the images are
    already rectified (image_proc's image_rect topics): D is ignored, P's intrinsics are used.
    """

    def __init__(self, info: CameraInfo, mode: str = "rectify") -> None:
        self.width, self.height = int(info.width), int(info.height)
        self.frame_id = info.header.frame_id
        self.k = camera_matrix(info)
        d = np.asarray(info.d, np.float64)
        self.distortion_model = info.distortion_model or "plumb_bob"
        self.map_v: np.ndarray | None = None  # source row per rectified pixel
        self.map_u: np.ndarray | None = None
        self.map_valid: np.ndarray | None = None
        if mode == "rectified":
            p = np.asarray(info.p, np.float64).reshape(3, 4)
            if np.all(np.isfinite(p)) and p[0, 0] > 0 and p[1, 1] > 0:
                self.k = p[:3, :3].copy()
            return
        if d.size == 0 or not np.any(d):
            return
        if not np.all(np.isfinite(d)):
            raise InputError("bad_camera_info", f"camera_info D is not finite: {list(d)}")
        if self.distortion_model not in RECTIFIABLE_MODELS:
            raise InputError(
                "distorted_image",
                f"camera_info has distortion model {self.distortion_model!r} with non-zero D "
                f"{list(d)}, which the node cannot undo; feed the rectified images instead "
                "(image_proc's image_rect_color and a depth registered to it, e.g. "
                "color_topic:=/camera/color/image_rect_color) and set distortion:=rectified",
            )
        if self.width <= 0 or self.height <= 0:
            raise InputError("bad_camera_info", "camera_info has no image size")
        self._build_map(d)

    def _build_map(self, d: np.ndarray) -> None:
        """For every pixel of the rectified image (camera matrix K): the raw pixel it shows."""
        k = self.k
        u, v = np.meshgrid(np.arange(self.width, dtype=np.float64),
                           np.arange(self.height, dtype=np.float64))
        x = (u - k[0, 2]) / k[0, 0]
        y = (v - k[1, 2]) / k[1, 1]
        xd, yd = distort_points(x, y, d, self.distortion_model)
        su = np.rint(xd * k[0, 0] + k[0, 2])
        sv = np.rint(yd * k[1, 1] + k[1, 2])
        valid = (su >= 0) & (su < self.width) & (sv >= 0) & (sv < self.height)
        self.map_u = np.where(valid, su, 0).astype(np.intp)
        self.map_v = np.where(valid, sv, 0).astype(np.intp)
        self.map_valid = valid

    @property
    def distorted(self) -> bool:
        return self.map_u is not None

    def rectify(self, color: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw colour and depth -> rectified (pinhole K); pixels outside the raw image get no
        depth. Identity for an undistorted camera."""
        if self.map_u is None:
            return color, depth
        d = depth[self.map_v, self.map_u]
        d[~self.map_valid] = 0.0
        return color[self.map_v, self.map_u], d


def distort_points(x: np.ndarray, y: np.ndarray, d: np.ndarray,
                   model: str) -> tuple[np.ndarray, np.ndarray]:
    """Normalised undistorted image coordinates -> distorted ones (OpenCV's formulas).

    plumb_bob / rational_polynomial: D = k1, k2, p1, p2, k3[, k4, k5, k6];
    equidistant (fisheye): D = k1, k2, k3, k4.
    """
    c = np.zeros(8)
    c[: min(8, d.size)] = d[:8]
    if model == "equidistant":
        r = np.hypot(x, y)
        theta = np.arctan(r)
        t2 = theta * theta
        theta_d = theta * (1 + c[0] * t2 + c[1] * t2**2 + c[2] * t2**3 + c[3] * t2**4)
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.where(r > 1e-12, theta_d / r, 1.0)
        return x * scale, y * scale
    k1, k2, p1, p2, k3, k4, k5, k6 = c
    r2 = x * x + y * y
    radial = (1 + k1 * r2 + k2 * r2**2 + k3 * r2**3) / (1 + k4 * r2 + k5 * r2**2 + k6 * r2**3)
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd, yd


def check_sizes(color: np.ndarray, depth: np.ndarray, info: CameraInfo | CameraModel) -> None:
    """Colour, depth and camera_info must agree on the image size (depth registered)."""
    hc, wc = color.shape[:2]
    hd, wd = depth.shape
    if (hc, wc) != (hd, wd):
        raise InputError(
            "size_mismatch",
            f"depth {wd}x{hd} != colour {wc}x{hc}: depth must be registered to the colour "
            "image (e.g. the driver's aligned_depth_to_color topic)",
        )
    if (info.width, info.height) != (wc, hc):
        raise InputError(
            "size_mismatch",
            f"camera_info {info.width}x{info.height} != images {wc}x{hc}: "
            "use the camera_info of the colour camera",
        )


def numpy_to_image(arr: np.ndarray, encoding: str, header: Header) -> Image:
    """A numpy image as sensor_msgs/Image (fast: ``array.array`` instead of bytes)."""
    arr = np.ascontiguousarray(arr)
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(arr.strides[0])
    msg.data = array.array("B", arr.tobytes())
    return msg


# ------------------------------------------------------------------------------- clouds
CLOUD_DTYPE = np.dtype(
    [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<f4"), ("instance", "<u4"),
     ("label", "<i4")]
)
_FIELD_TYPES = {
    np.dtype("<f4"): PointField.FLOAT32, np.dtype("<u4"): PointField.UINT32,
    np.dtype("<i4"): PointField.INT32, np.dtype("<f8"): PointField.FLOAT64,
    np.dtype("u1"): PointField.UINT8, np.dtype("<u2"): PointField.UINT16,
}
_NP_TYPES = {v: k for k, v in _FIELD_TYPES.items()}


def pack_rgb(colors: np.ndarray) -> np.ndarray:
    """uint8 RGB [N, 3] as the float32 ``rgb`` field RViz expects (0x00RRGGBB bits)."""
    c = colors.astype(np.uint32)
    return ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).view(np.float32)


def unpack_rgb(rgb: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_rgb`: float32 [N] to uint8 [N, 3]."""
    v = np.ascontiguousarray(rgb, np.float32).view(np.uint32)
    return np.stack([(v >> 16) & 255, (v >> 8) & 255, v & 255], 1).astype(np.uint8)


def make_cloud(
    header: Header, points: np.ndarray, colors: np.ndarray, instance: np.ndarray,
    label: np.ndarray,
) -> PointCloud2:
    """PointCloud2 with fields x, y, z, rgb, instance (uint32, 0 = none), label (int32 index
    into the InstanceArray's vocabulary, -1 = none)."""
    n = int(points.shape[0])
    arr = np.empty(n, CLOUD_DTYPE)
    arr["x"], arr["y"], arr["z"] = points[:, 0], points[:, 1], points[:, 2]
    arr["rgb"] = pack_rgb(colors)
    arr["instance"], arr["label"] = instance, label
    return numpy_to_cloud(arr, header)


def numpy_to_cloud(arr: np.ndarray, header: Header) -> PointCloud2:
    """A structured numpy array [N] as an unorganised PointCloud2."""
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = 1, int(arr.shape[0])
    msg.fields = [
        PointField(name=name, offset=int(off), datatype=_FIELD_TYPES[dt], count=1)
        for name, (dt, off) in arr.dtype.fields.items()
    ]
    msg.is_bigendian = False
    msg.point_step = arr.dtype.itemsize
    msg.row_step = msg.point_step * msg.width
    msg.is_dense = True
    msg.data = array.array("B", arr.tobytes())
    return msg


def cloud_to_numpy(msg: PointCloud2) -> np.ndarray:
    """A PointCloud2 as a structured numpy array [H*W] (fields by name)."""
    dtype = np.dtype({
        "names": [f.name for f in msg.fields],
        "formats": [_NP_TYPES[f.datatype] for f in msg.fields],
        "offsets": [f.offset for f in msg.fields],
        "itemsize": msg.point_step,
    })
    return np.frombuffer(msg.data, dtype, count=msg.width * msg.height)


# ------------------------------------------------------------------------------- markers
def label_color(label: str) -> tuple[float, float, float]:
    """One stable colour per label (hash of the text -> hue), the same in every run."""
    h = int(hashlib.md5(label.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return colorsys.hsv_to_rgb(h, 0.75, 0.95)


def instance_color(instance_id: int) -> tuple[float, float, float]:
    """A distinct colour per instance id (golden-ratio hues)."""
    return colorsys.hsv_to_rgb((instance_id * 0.618034) % 1.0, 0.7, 0.95)


BOX_NS = "folk/boxes"
TEXT_NS = "folk/labels"


def delete_all_markers(header: Header) -> list[Marker]:
    """DELETEALL in each of the node's namespaces: RViz drops what an earlier run (or an
    earlier process of this node) left behind. One per namespace because RViz 2 limits a
    DELETEALL with a namespace to that namespace."""
    return [Marker(header=header, ns=ns, id=0, action=Marker.DELETEALL)
            for ns in (BOX_NS, TEXT_NS)]


def make_markers(
    header: Header,
    instances: Sequence[tuple[int, str, float, Sequence[float], Sequence[float]]],
    previous_ids: set[int],
    clear_first: bool = False,
) -> MarkerArray:
    """Box + text marker per instance, coloured by label; DELETE for ids no longer present.

    ``instances``: (id, label, score, centroid xyz, size xyz). Markers carry the instance id
    as marker id in two namespaces, so RViz updates them in place across runs.
    ``clear_first``: start with DELETEALL (the first markers after a start or a reset).
    """
    out = MarkerArray()
    if clear_first:
        out.markers.extend(delete_all_markers(header))
    current = set()
    for iid, label, score, c, s in instances:
        current.add(iid)
        r, g, b = label_color(label)
        box = Marker(header=header, ns=BOX_NS, id=int(iid), type=Marker.CUBE, action=Marker.ADD)
        box.pose.position = Point(x=float(c[0]), y=float(c[1]), z=float(c[2]))
        box.pose.orientation.w = 1.0
        box.scale = Vector3(x=max(float(s[0]), 0.01), y=max(float(s[1]), 0.01),
                            z=max(float(s[2]), 0.01))
        box.color = ColorRGBA(r=r, g=g, b=b, a=0.35)
        text = Marker(header=header, ns=TEXT_NS, id=int(iid), type=Marker.TEXT_VIEW_FACING,
                      action=Marker.ADD)
        text.pose.position = Point(x=float(c[0]), y=float(c[1]), z=float(c[2] + s[2] / 2 + 0.1))
        text.pose.orientation.w = 1.0
        text.scale.z = 0.12
        text.color = ColorRGBA(r=r, g=g, b=b, a=1.0)
        text.text = f"{iid}: {label} {score:.2f}"
        out.markers.extend([box, text])
    for iid in sorted(previous_ids - current):
        for ns in (BOX_NS, TEXT_NS):
            out.markers.append(Marker(header=header, ns=ns, id=int(iid), action=Marker.DELETE))
    return out


def pose_to_matrix(position: Point, orientation: object) -> np.ndarray:
    """geometry_msgs Pose parts (quaternion x, y, z, w) as a 4x4 matrix."""
    q = np.array([orientation.w, orientation.x, orientation.y, orientation.z], np.float64)
    n = np.linalg.norm(q)
    if not np.isfinite(n) or n < 1e-6:
        raise InputError("bad_pose", "pose quaternion is zero or not finite")
    w, x, y, z = q / n
    m = np.eye(4)
    m[:3, :3] = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    m[:3, 3] = [position.x, position.y, position.z]
    if not np.all(np.isfinite(m)):
        raise InputError("bad_pose", "pose position is not finite")
    return m


def transform_to_matrix(values: Sequence[float]) -> np.ndarray:
    """[x, y, z, qx, qy, qz, qw] (static_transform_publisher's order) as a 4x4 matrix."""
    if len(values) != 7:
        raise ValueError(f"need 7 numbers x, y, z, qx, qy, qz, qw; got {len(values)}")
    pos = Point(x=float(values[0]), y=float(values[1]), z=float(values[2]))
    q = Quaternion(x=float(values[3]), y=float(values[4]), z=float(values[5]),
                   w=float(values[6]))
    try:
        return pose_to_matrix(pos, q)
    except InputError as exc:
        raise ValueError(str(exc)) from exc


def matrix_to_quaternion(m: np.ndarray) -> tuple[float, float, float, float]:
    """Rotation part of a 4x4 as a ROS quaternion (x, y, z, w)."""
    import transforms3d.quaternions as tq

    w, x, y, z = tq.mat2quat(m[:3, :3])
    return float(x), float(y), float(z), float(w)
