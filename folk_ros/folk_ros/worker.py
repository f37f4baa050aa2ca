"""Threads that keep heavy work out of ROS callbacks (ROS-free; the node wires them up).

- :class:`LatestQueue`: bounded, keeps the newest items (a camera at 30 Hz must never build a
  backlog behind a slow consumer; the oldest frame is the one to drop, and drops are counted).
- :class:`SegmentationWorker`: one thread that runs the student every ``period`` seconds or
  when asked. Requests coalesce into one pending flag, so at most one run is ever queued
  behind the running one. Each run snapshots the map (under the caller's lock, briefly), runs
  the network without any lock held by callbacks, assigns stable ids and hands a
  :class:`RunResult` to a callback. Exceptions are logged and counted, never swallowed
  silently, and the thread keeps serving.

Reset versus a run in flight: every snapshot carries the map's *generation* (bumped by
:meth:`SegmentationWorker.reset`). A run whose snapshot is of an older generation is thrown
away before it touches the tracker or reaches the callback, and the node checks the
generation again under its publish lock, so nothing from before a reset is ever published or
kept as the last result after it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from folk_model.fusion.tracking import InstanceTracker
from folk_model.fusion.voxel_map import MapSnapshot

log = logging.getLogger(__name__)
T = TypeVar("T")


class LatestQueue(Generic[T]):
    """Thread-safe bounded queue that drops the oldest item when full."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._items: deque[T] = deque()
        self._cap = capacity
        self._cond = threading.Condition()
        self.dropped = 0
        self._closed = False
        self._taken = 0  # items handed out by get() and not yet task_done()

    def put(self, item: T) -> None:
        with self._cond:
            if len(self._items) >= self._cap:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest queued item, or None on timeout / close."""
        with self._cond:
            self._cond.wait_for(lambda: self._items or self._closed, timeout=timeout)
            if not self._items:
                return None
            self._taken += 1
            return self._items.popleft()

    def task_done(self) -> None:
        """The consumer finished an item from :meth:`get` (counted until then in
        :meth:`pending`)."""
        with self._cond:
            self._taken -= 1

    def pending(self) -> int:
        """Items queued plus items taken by the consumer and not yet done."""
        with self._cond:
            return len(self._items) + self._taken

    def clear(self) -> int:
        """Drop the queued items; returns how many."""
        with self._cond:
            n = len(self._items)
            self._items.clear()
            return n

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


@dataclass
class RunResult:
    """One segmentation run, everything needed to relabel and republish without the network.

    Attributes:
        run: run counter (1, 2, ...).
        stamp_ns: stamp of the newest frame fused into the snapshot.
        snapshot: the map the student saw (points float32 [M, 3], colours uint8 [M, 3]).
        ids: stable instance ids [K].
        proposal_scores: float32 [K].
        embeddings: float32 [K, D] unit vectors in the VL space.
        point_instance: uint32 [M] instance id per map point (0 = none).
        centroids / sizes: float32 [K, 3] axis-aligned box centre and extent.
        num_points: int [K].
        seconds: wall time of the network (student) for this run.
        timings: the student's per-stage timings.
        generation: the map generation (resets so far) the snapshot was taken in.
    """

    run: int
    stamp_ns: int
    snapshot: MapSnapshot
    ids: list[int]
    proposal_scores: np.ndarray
    embeddings: np.ndarray
    point_instance: np.ndarray
    centroids: np.ndarray
    sizes: np.ndarray
    num_points: np.ndarray
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    generation: int = 0


def build_result(run: int, stamp_ns: int, snap: MapSnapshot, instances: list[Any],
                 tracker: InstanceTracker, dim: int, seconds: float,
                 timings: dict[str, float], generation: int = 0) -> RunResult:
    """Turn the student's instances into a :class:`RunResult` with stable ids and boxes."""
    instances = [i for i in instances if len(i.point_indices)]
    ids = tracker.assign([snap.keys[i.point_indices] for i in instances])
    m, k = snap.points.shape[0], len(instances)
    point_instance = np.zeros(m, np.uint32)
    cent = np.zeros((k, 3), np.float32)
    size = np.zeros((k, 3), np.float32)
    npts = np.zeros(k, np.int64)
    # Larger instances first so that a small one inside a large one stays visible.
    for j in sorted(range(k), key=lambda j: -len(instances[j].point_indices)):
        idx = instances[j].point_indices
        point_instance[idx] = ids[j]
        p = snap.points[idx]
        lo, hi = p.min(0), p.max(0)
        cent[j], size[j], npts[j] = (lo + hi) / 2, hi - lo, len(idx)
    emb = (np.stack([np.asarray(i.embedding, np.float32) for i in instances])
           if k else np.zeros((0, dim), np.float32))
    scores = np.array([float(i.score) for i in instances], np.float32)
    return RunResult(run, stamp_ns, snap, ids, scores, emb, point_instance, cent, size, npts,
                     seconds, dict(timings), generation)


class SegmentationWorker:
    """Runs segmentation every ``period`` s (0 = only on request) on a worker thread.

    Args:
        snapshot_fn: returns (MapSnapshot, stamp_ns, generation) or None when there is nothing
            to segment; it takes the map's lock only while copying, and reads
            :attr:`generation` under the same lock under which the caller resets the map.
        segment_fn: (points, colours) -> object with ``instances`` and ``timings`` (the
            student's SegmentationResult).
        on_result: called on the worker thread with each RunResult.
        dim: embedding dimension (for empty results).
        nice: added to the worker thread's nice value (Linux: per thread) when it starts;
            0 leaves it alone. Why: on a small CPU the student's run and fusion compete for
            the cores, and fusion must keep the camera's rate (a late frame is dropped, a
            late segmentation run is just later); see :func:`lower_thread_priority`.
    """

    def __init__(
        self,
        snapshot_fn: Callable[[], tuple[MapSnapshot, int, int] | None],
        segment_fn: Callable[[np.ndarray, np.ndarray], Any],
        on_result: Callable[[RunResult], None],
        period: float,
        dim: int,
        min_iou: float = 0.25,
        nice: int = 0,
    ) -> None:
        self._snapshot_fn = snapshot_fn
        self._segment_fn = segment_fn
        self._on_result = on_result
        self.period = float(period)
        self.dim = dim
        self.nice = int(nice)
        self.nice_applied = 0  # what lower_thread_priority managed (diagnostics)
        self.tracker = InstanceTracker(min_iou)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._busy = threading.Event()
        self._lock = threading.Lock()  # guards tracker + run counter against reset()
        self.runs = 0
        self.failures = 0
        self.skipped_empty = 0
        self.generation = 0  # resets so far; see the module docstring
        self.discarded = 0  # runs thrown away because a reset came while they ran
        # the generation a requested run was asked for in: a reset between the request and
        # the worker's snapshot discards it too (else whether it counted depended on how
        # soon the niced thread was scheduled)
        self._requested_generation: int | None = None
        self.last_error = ""
        self._last_start = float("-inf")  # the first periodic run is due at once
        self._thread = threading.Thread(target=self._loop, name="folk_segmentation", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    def request(self) -> str:
        """Ask for a run; returns "started", "queued" (after the running one) or "pending"
        (already queued: requests coalesce, never more than one waits)."""
        if self._wake.is_set():
            return "pending"
        state = "queued" if self.busy else "started"
        with self._lock:
            self._requested_generation = self.generation
        self._wake.set()
        return state

    def reset(self) -> int:
        """Forget the previous run's instances (ids keep increasing, never reused) and start a
        new generation: a run in flight is discarded. Returns the new generation."""
        with self._lock:
            self.tracker.reset()
            self.generation += 1
            return self.generation

    def _loop(self) -> None:
        if self.nice:
            self.nice_applied = lower_thread_priority(self.nice)
        # Short waits instead of one long one: a new ``period`` (a run-time parameter) takes
        # effect within 0.2 s, and stop() is honoured as quickly.
        while not self._stop.is_set():
            requested = self._wake.wait(timeout=0.2)
            if self._stop.is_set():
                break
            due = self.period > 0 and time.monotonic() >= self._last_start + self.period
            if not (requested or due):
                continue
            self._wake.clear()
            with self._lock:
                asked_in, self._requested_generation = self._requested_generation, None
            self._last_start = time.monotonic()
            self._busy.set()
            try:
                self.run_once(asked_in if requested else None)
            except Exception as exc:  # a failed run must not kill the worker
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("segmentation run failed: %s", exc)
            finally:
                self._busy.clear()

    def run_once(self, asked_in: int | None = None) -> RunResult | None:
        """One run on the calling thread (the worker thread in the node). ``asked_in``: the
        generation a requested run was asked for in; a reset since discards it unrun."""
        if asked_in is not None and asked_in != self.generation:
            with self._lock:
                self.discarded += 1
            log.info("segmentation run discarded: the map was reset before it started")
            return None
        got = self._snapshot_fn()
        if got is None:
            self.skipped_empty += 1
            return None
        snap, stamp, generation = got
        t0 = time.perf_counter()
        seg = self._segment_fn(snap.points, snap.colors)
        seconds = time.perf_counter() - t0
        with self._lock:
            if generation != self.generation:  # reset while the network ran
                self.discarded += 1
                log.info("segmentation run discarded: the map was reset while it ran")
                return None
            self.runs += 1
            result = build_result(self.runs, stamp, snap, list(seg.instances), self.tracker,
                                  self.dim, seconds, getattr(seg, "timings", {}), generation)
        log.info("segmentation run %d: %d instances on %d points in %.2f s", result.run,
                 len(result.ids), snap.points.shape[0], seconds)
        self._on_result(result)
        return result


def lower_thread_priority(increment: int) -> int:
    """Raise the calling thread's nice value by ``increment`` (lower its CPU priority);
    returns the increment applied (0 where the OS has no per-thread nice, or on failure).

    Linux keeps a nice value per thread and ``setpriority(PRIO_PROCESS, tid)`` sets one
    thread's, so the rest of the process keeps its priority; threads this thread starts
    later (torch's intra-op pool) inherit it. Raising one's own nice value needs no
    privilege. Elsewhere (macOS: PRIO_PROCESS is the whole process) nothing is done.
    """
    if increment <= 0 or not sys.platform.startswith("linux"):
        return 0
    tid = threading.get_native_id()
    try:
        now = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, now + increment))
        return os.getpriority(os.PRIO_PROCESS, tid) - now
    except OSError as exc:  # e.g. a seccomp profile that forbids it: run at normal priority
        log.warning("could not lower the segmentation thread's priority: %s", exc)
        return 0
