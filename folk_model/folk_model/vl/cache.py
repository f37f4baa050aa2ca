"""A text-embedding cache, so that a vocabulary is encoded once per backend and model.

Text encoders are the slow part of changing a vocabulary (the offline backend embeds the 1000
ImageNet class descriptions; the ROS node re-embeds its vocabulary on every change). Entries
are keyed by (backend, text model, prompt after the template is applied): the same word under
another template or another model is another entry.

Storage: one ``.npz`` file per (backend, model) namespace in ``cache_dir`` plus an in-memory
dict. Writes go to a temporary file that is renamed into place, and merge with what is on disk,
so that two processes sharing a cache folder lose at most the entries of the slower writer,
never corrupt the file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


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
    """

    def __init__(self, cache_dir: str | Path | None, backend: str, model: str, dim: int) -> None:
        self.backend = backend
        self.model = model
        self.dim = int(dim)
        self.hits = 0
        self.misses = 0
        self._mem: dict[str, np.ndarray] = {}
        self._path: Path | None = None
        if cache_dir is not None:
            folder = Path(cache_dir) if str(cache_dir) else default_cache_dir()
            ns = hashlib.sha1(f"{backend}\n{model}\n{self.dim}".encode()).hexdigest()[:16]
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{backend}_{model}")
            self._path = folder / f"{safe[:80]}_{ns}.npz"
            self._load()

    @property
    def path(self) -> Path | None:
        """The cache file, or None for a memory-only cache."""
        return self._path

    def _read_disk(self) -> dict[str, np.ndarray]:
        if self._path is None or not self._path.is_file():
            return {}
        try:
            with np.load(self._path) as z:
                return {k: z[k].astype(np.float32) for k in z.files if z[k].shape == (self.dim,)}
        except Exception as exc:  # a corrupt cache is rebuilt, never fatal
            logger.warning("text cache %s unreadable (%s); starting empty", self._path, exc)
            return {}

    def _load(self) -> None:
        self._mem.update(self._read_disk())
        if self._mem:
            logger.debug("text cache %s: %d entries", self._path, len(self._mem))

    def _flush(self) -> None:
        if self._path is None:
            return
        merged = self._read_disk()
        merged.update(self._mem)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, suffix=".tmp.npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **merged)
            os.replace(tmp, self._path)
        except OSError as exc:  # read-only home, full disk: keep working from memory
            logger.warning("text cache %s not written: %s", self._path, exc)
            Path(tmp).unlink(missing_ok=True)

    def get_or_encode(
        self, prompts: Sequence[str], encode: Callable[[list[str]], np.ndarray]
    ) -> np.ndarray:
        """Embeddings float32 [M, D] of ``prompts``; only the missing ones go to ``encode``.

        ``encode`` takes a list of prompts and returns float32 [m, D] unit vectors.
        """
        keys = [_key(p) for p in prompts]
        missing: dict[str, str] = {}
        for k, p in zip(keys, prompts):
            if k not in self._mem and k not in missing:
                missing[k] = p
        self.hits += len(prompts) - sum(1 for k in keys if k in missing)
        self.misses += sum(1 for k in keys if k in missing)
        if missing:
            vecs = np.asarray(encode(list(missing.values())), dtype=np.float32)
            if vecs.shape != (len(missing), self.dim):
                want = (len(missing), self.dim)
                raise ValueError(f"encoder returned {vecs.shape}, expected {want}")
            for k, v in zip(missing, vecs):
                self._mem[k] = v
            self._flush()
        if not prompts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self._mem[k] for k in keys]).astype(np.float32)

    def __len__(self) -> int:
        return len(self._mem)

    def __contains__(self, prompt: str) -> bool:
        return _key(prompt) in self._mem
