"""Approximate time synchronisation of colour and depth, and a pose buffer.

camera_info is not synchronised (the node keeps the latest one per frame id: drivers may
latch it once or send it at another rate); ``streams`` still allows it for other uses.

message_filters is not installable from PyPI, so this is a small, dependency-free policy:
each colour message is the pivot; it is matched with the messages of the other streams
whose stamps are nearest to it, if they lie within ``slop`` seconds and the colour is also
their nearest colour; an inexact match waits until no better partner can arrive (so a lost
or late depth image is never replaced by a neighbouring frame's). Complete sets are emitted
oldest first; everything at or before an emitted set is then dropped (colour messages passed
over that way are counted in ``skipped``, those pushed out of a full buffer unmatched in
``overflowed``, those still waiting are :meth:`ApproxSync.pending`). Stamps that go backwards
(bag loops, clock resets, a late driver) are rejected and counted, so the map is never fed
the past.

Thread-safe: the node may call :meth:`ApproxSync.add` from several callback threads.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

STREAMS = ("color", "depth", "info")


class ApproxSync:
    """Match the streams (colour first, the pivot) by nearest stamp within ``slop`` s."""

    def __init__(self, slop: float, callback: Callable[[int, dict[str, Any]], None],
                 queue_size: int = 10, streams: tuple[str, ...] = STREAMS) -> None:
        if slop < 0:
            raise ValueError(f"slop must be >= 0, got {slop}")
        if streams[0] != "color":
            raise ValueError("the first stream must be 'color' (the pivot)")
        self.slop_ns = int(slop * 1e9)
        self.callback = callback
        self.streams = tuple(streams)
        self._buf: dict[str, deque[tuple[int, Any]]] = {
            s: deque(maxlen=queue_size) for s in self.streams
        }
        self._lock = threading.Lock()
        self._last_emitted = -1
        self._last_in = dict.fromkeys(self.streams, -1)
        self.out_of_order = 0  # messages rejected because their stamp went backwards
        self.matched = 0
        self.skipped = 0  # colour messages passed over for a newer matched one
        # colour messages pushed out of the full buffer unmatched (their depth never came)
        self.overflowed = 0
        self._emitting = 0  # matched sets whose callback has not returned yet (pending)

    def pending(self) -> int:
        """Colour messages waiting in the buffer for their partners (neither matched nor
        passed over yet): with the counters, every colour message added is accounted for."""
        with self._lock:
            return len(self._buf["color"]) + self._emitting

    def reset(self) -> int:
        """Forget buffered messages and the stamp history (e.g. after a bag loops).
        Returns how many colour messages were waiting (forgotten unmatched)."""
        with self._lock:
            n = len(self._buf["color"])
            for b in self._buf.values():
                b.clear()
            self._last_emitted = -1
            self._last_in = dict.fromkeys(self.streams, -1)
            return n

    def add(self, stream: str, stamp: int, msg: Any) -> bool:
        """Add one message (stamp in ns); returns False when rejected as out of order."""
        with self._lock:
            if stamp < self._last_in[stream] or stamp <= self._last_emitted:
                self.out_of_order += 1
                return False
            self._last_in[stream] = stamp
            buf = self._buf[stream]
            if stream == "color" and len(buf) == buf.maxlen:
                self.overflowed += 1  # the deque drops its oldest on append
            buf.append((stamp, msg))
            ready = []
            while (m := self._try_match()) is not None:
                ready.append(m)
            self._emitting += len(ready)
        for m in ready:  # outside the lock: the callback may take its time
            try:
                self.callback(*m)
            finally:
                with self._lock:
                    self._emitting -= 1
        return True

    def _nearest(self, stream: str, stamp: int) -> tuple[int, Any] | None:
        best = None
        for s, m in self._buf[stream]:
            dt = abs(s - stamp)
            if dt <= self.slop_ns and (best is None or dt < abs(best[0] - stamp)):
                best = (s, m)
        return best

    def _mutual(self, stamp: int, stream: str, other: int) -> bool:
        """Whether colour ``stamp`` and its nearest ``stream`` message (stamp ``other``) are
        each other's nearest, now and for good. An inexact pair waits while a better partner
        may still arrive: a message of ``stream`` at or after the colour, or a colour at or
        after ``other``. Otherwise, with a slop longer than the frame period, a colour whose
        depth was lost or late would be fused with the next frame's depth, i.e. from
        another viewpoint."""
        if other == stamp:
            return True
        if self._last_in[stream] < stamp or self._last_in["color"] < other:
            return False
        nearest = min((s for s, _ in self._buf["color"]), key=lambda s: abs(s - other))
        return nearest == stamp

    def _try_match(self) -> tuple[int, dict[str, Any]] | None:
        # Oldest complete frame first: callbacks of different topics run in any order, so a
        # newer frame can complete before an older one; the queue behind the sync is what
        # keeps only the newest frames under load.
        others = self.streams[1:]
        for stamp, color in self._buf["color"]:
            near = {s: self._nearest(s, stamp) for s in others}
            if any(m is None for m in near.values()):
                continue
            if not all(self._mutual(stamp, s, m[0]) for s, m in near.items()):
                continue
            cut = max(stamp, *(m[0] for m in near.values()))
            for name, b in self._buf.items():
                while b and b[0][0] <= cut:
                    b.popleft()
                    if name == "color":
                        self.skipped += 1
            self.skipped -= 1  # the matched colour message itself
            self._last_emitted = stamp
            self.matched += 1
            return stamp, {"color": color, **{s: m[1] for s, m in near.items()}}
        return None


def interpolate_pose(p0: np.ndarray, p1: np.ndarray, a: float) -> np.ndarray:
    """4x4 pose at fraction ``a`` from ``p0`` to ``p1``: linear translation, slerp rotation.

    Why slerp: taking the nearer rotation is off by half the rotation between two poses; a
    turning robot then smears its map (9 degrees between two poses of a fast pan).
    """
    import transforms3d.quaternions as tq

    q0, q1 = tq.mat2quat(p0[:3, :3]), tq.mat2quat(p1[:3, :3])
    dot = float(np.dot(q0, q1))
    if dot < 0:  # the shorter way round
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + a * (q1 - q0)
    else:
        th = np.arccos(min(dot, 1.0))
        q = (np.sin((1 - a) * th) * q0 + np.sin(a * th) * q1) / np.sin(th)
    out = np.eye(4)
    out[:3, :3] = tq.quat2mat(q / np.linalg.norm(q))
    out[:3, 3] = (1 - a) * p0[:3, 3] + a * p1[:3, 3]
    return out


class PoseBuffer:
    """Recent poses by stamp, for pose topics (PoseStamped / Odometry).

    The poses are of the topic's body frame (Odometry's child_frame_id, or the frame named
    by the node's pose_frame parameter); ``frame`` is the newest one seen, which the node
    composes with the camera's mounting.

    :meth:`lookup` waits up to ``timeout`` for a pose at or after the stamp (the pose may
    arrive after the image), then interpolates between the poses before and after it
    (translation linearly, rotation by slerp, when they are at most 2 ``slop`` apart or one
    is within ``slop``); a stamp before the first or after the newest pose fails (counted in
    ``extrapolated``): never extrapolated.
    """

    def __init__(self, slop: float, size: int = 200) -> None:
        self.slop_ns = int(slop * 1e9)
        self._stamps: list[int] = []
        self._poses: list[np.ndarray] = []
        self._size = size
        self._cond = threading.Condition()
        self.frame = ""
        self.extrapolated = 0  # lookups refused: the stamp lies outside the poses received
    def add(self, stamp: int, pose: np.ndarray, frame: str = "") -> None:
        with self._cond:
            self.frame = frame
            i = bisect.bisect_right(self._stamps, stamp)
            self._stamps.insert(i, stamp)
            self._poses.insert(i, pose)
            if len(self._stamps) > self._size:
                del self._stamps[0], self._poses[0]
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._stamps.clear()
            self._poses.clear()

    def _lookup(self, stamp: int) -> np.ndarray | None:
        if not self._stamps:
            return None
        i = bisect.bisect_left(self._stamps, stamp)
        if i < len(self._stamps) and self._stamps[i] == stamp:
            return self._poses[i]
        if 0 < i < len(self._stamps):
            s0, s1 = self._stamps[i - 1], self._stamps[i]
            if min(stamp - s0, s1 - stamp) > self.slop_ns and s1 - s0 > 2 * self.slop_ns:
                return None
            a = (stamp - s0) / max(s1 - s0, 1)
            return interpolate_pose(self._poses[i - 1], self._poses[i], a)
        # Outside the poses received (the image's own pose is late or lost): no guess. Taking
        # the nearest pose put a 30 Hz camera's frame at the previous frame's viewpoint.
        self.extrapolated += 1
        return None

    def lookup(self, stamp: int, timeout: float) -> np.ndarray | None:
        """Pose at ``stamp`` (ns) or None when none arrives within ``timeout`` seconds."""
        with self._cond:
            def ready() -> bool:
                return bool(self._stamps) and self._stamps[-1] >= stamp

            self._cond.wait_for(ready, timeout=timeout)
            return self._lookup(stamp)
