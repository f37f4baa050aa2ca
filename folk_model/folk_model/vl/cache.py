"""A text-embedding cache, so that a vocabulary is encoded once per backend and model.

Text encoders are the slow part of changing a vocabulary (the offline backend embeds the 1000
ImageNet class descriptions; the ROS node re-embeds its vocabulary on every change). Entries
are keyed by (backend, text model, prompt after the template is applied): the same word under
another template or another model is another entry.

Bounded: a robot's node runs for weeks and every free-text query phrase is a new prompt, so
the in-memory cache keeps at most ``max_entries`` vectors, least recently used out first.

Storage: one append-only file per (backend, model) namespace in ``cache_dir``. Each record is
a magic, the SHA-1 of the prompt and the float32 vector; new entries are appended with one
``write`` (O_APPEND), never by rewriting the file, so a new phrase costs one small write and
two processes sharing the folder never corrupt each other's records. Reading keeps the newest
``max_entries`` records and skips a torn or foreign tail. When the file holds more than twice
``max_entries`` records it is compacted (newest entries to a temporary file renamed into
place). A cache in the former ``.npz`` format is imported once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_MAX_ENTRIES = 10_000  # about 15 MB of 384-d vectors
_MAGIC = b"FTC1"


def default_cache_dir() -> Path:
    """``~/.cache/folk/text`` (or ``$XDG_CACHE_HOME/folk/text``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "folk" / "text"


def _key(prompt: str) -> str:
    """A stable, file-name-safe key for one prompt (npz keys must be identifiers-ish)."""
    return "k" + hashlib.sha1(prompt.encode("utf-8")).hexdigest()


class TextCache:
    """Prompt -> unit vector [D] for one (backend, model), on disk and in memory.

    Attributes:
        hits: prompts answered from the cache since creation.
        misses: prompts that had to be encoded.
        max_entries: most vectors held in memory (least recently used evicted first).
    """

    def __init__(self, cache_dir: str | Path | None, backend: str, model: str, dim: int,
                 max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.backend = backend
        self.model = model
        self.dim = int(dim)
        self.max_entries = int(max_entries)
        self.hits = 0
        self.misses = 0
        self._mem: OrderedDict[str, np.ndarray] = OrderedDict()
        self._path: Path | None = None
        self._legacy: Path | None = None
        self._records_on_disk = 0
        # The key as raw bytes: numpy's "S" type would drop a digest's trailing zero bytes.
        self._rec = np.dtype([("magic", "S4"), ("key", "u1", (20,)),
                              ("vec", "<f4", (self.dim,))])
        if cache_dir is not None:
            folder = Path(cache_dir) if str(cache_dir) else default_cache_dir()
            ns = hashlib.sha1(f"{backend}\n{model}\n{self.dim}".encode()).hexdigest()[:16]
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{backend}_{model}")
            self._path = folder / f"{safe[:80]}_{ns}.f32log"
            self._legacy = folder / f"{safe[:80]}_{ns}.npz"
            self._load()

    @property
    def path(self) -> Path | None:
        """The cache file, or None for a memory-only cache."""
        return self._path

    # ------------------------------------------------------------------------------ disk
    def _read_disk(self) -> list[tuple[str, np.ndarray]]:
        """Valid records in file order (oldest first); a torn or foreign tail is skipped."""
        if self._path is None or not self._path.is_file():
            return []
        try:
            raw = self._path.read_bytes()
        except OSError as exc:
            logger.warning("text cache %s unreadable (%s); starting empty", self._path, exc)
            return []
        n = len(raw) // self._rec.itemsize
        recs = np.frombuffer(raw, self._rec, count=n)
        ok = recs["magic"] == _MAGIC
        if not ok.all():  # a partial write of another process: keep what precedes it
            n = int(np.argmin(ok))
            logger.warning("text cache %s: %d bad records skipped", self._path, len(ok) - n)
            recs = recs[:n]
        self._records_on_disk = len(raw) // self._rec.itemsize
        vecs = recs["vec"].astype(np.float32)
        return [("k" + recs["key"][i].tobytes().hex(), vecs[i]) for i in range(len(recs))]

    def _import_legacy(self) -> list[tuple[str, np.ndarray]]:
        """Entries of a cache written in the former .npz format (read once, then appended)."""
        if self._legacy is None or not self._legacy.is_file():
            return []
        try:
            with np.load(self._legacy) as z:
                return [(k, z[k].astype(np.float32)) for k in z.files
                        if z[k].shape == (self.dim,) and len(k) == 41]
        except Exception as exc:  # a corrupt cache is rebuilt, never fatal
            logger.warning("text cache %s unreadable (%s); ignored", self._legacy, exc)
            return []

    def _load(self) -> None:
        entries = self._read_disk()
        if not entries and self._records_on_disk == 0:
            entries = self._import_legacy()
            if entries:
                self._append(entries)
        for k, v in entries:  # newest last: the newest max_entries stay
            self._put(k, v)
        if self._mem:
            logger.debug("text cache %s: %d entries", self._path, len(self._mem))

    def _encode_records(self, entries: Sequence[tuple[str, np.ndarray]]) -> bytes:
        recs = np.empty(len(entries), self._rec)
        recs["magic"] = _MAGIC
        recs["key"] = np.frombuffer(b"".join(bytes.fromhex(k[1:]) for k, _ in entries),
                                    np.uint8).reshape(-1, 20)
        recs["vec"] = np.stack([v for _, v in entries]) if entries else recs["vec"]
        return recs.tobytes()

    def _append(self, entries: Sequence[tuple[str, np.ndarray]]) -> None:
        """Append records with one write; compact when the file holds too many."""
        if self._path is None or not entries:
            return
        data = self._encode_records(entries)
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                written = os.write(fd, data)
            finally:
                os.close(fd)
            if written != len(data):
                logger.warning("text cache %s: short write (%d of %d bytes)", self._path,
                               written, len(data))
            self._records_on_disk += len(entries)
        except OSError as exc:  # read-only home, full disk: keep working from memory
            logger.warning("text cache %s not written: %s", self._path, exc)
            return
        if self._records_on_disk > 2 * self.max_entries:
            self._compact()

    def _compact(self) -> None:
        """Rewrite the file with its newest ``max_entries`` distinct entries."""
        assert self._path is not None
        newest: OrderedDict[str, np.ndarray] = OrderedDict()
        for k, v in self._read_disk():
            newest[k] = v
            newest.move_to_end(k)
        items = list(newest.items())[-self.max_entries:]
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(self._encode_records(items))
            os.replace(tmp, self._path)
            self._records_on_disk = len(items)
        except OSError as exc:
            logger.warning("text cache %s not compacted: %s", self._path, exc)
            Path(tmp).unlink(missing_ok=True)

    # ------------------------------------------------------------------------------ memory
    def _put(self, key: str, vec: np.ndarray) -> None:
        self._mem[key] = vec
        self._mem.move_to_end(key)
        while len(self._mem) > self.max_entries:
            self._mem.popitem(last=False)

    def get_or_encode(
        self, prompts: Sequence[str], encode: Callable[[list[str]], np.ndarray]
    ) -> np.ndarray:
        """Embeddings float32 [M, D] of ``prompts``; only the missing ones go to ``encode``.

        ``encode`` takes a list of prompts and returns float32 [m, D] unit vectors.
        """
        keys = [_key(p) for p in prompts]
        found: dict[str, np.ndarray] = {}
        missing: dict[str, str] = {}
        for k, p in zip(keys, prompts):
            if k in found or k in missing:
                continue
            v = self._mem.get(k)
            if v is None:
                missing[k] = p
            else:
                self._mem.move_to_end(k)
                found[k] = v
        self.misses += sum(1 for k in keys if k in missing)
        self.hits += len(prompts) - sum(1 for k in keys if k in missing)
        if missing:
            vecs = np.asarray(encode(list(missing.values())), dtype=np.float32)
            if vecs.shape != (len(missing), self.dim):
                want = (len(missing), self.dim)
                raise ValueError(f"encoder returned {vecs.shape}, expected {want}")
            new = list(zip(missing, vecs))
            for k, v in new:
                found[k] = v
                self._put(k, v)
            self._append(new)
        if not prompts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32)

    def __len__(self) -> int:
        return len(self._mem)

    def __contains__(self, prompt: str) -> bool:
        return _key(prompt) in self._mem
