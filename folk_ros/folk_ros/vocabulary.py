"""The active vocabulary and its cached text embeddings (ROS-free).

Why a cache: relabelling must be instant and the text encoder is the slow part, so every
(template, text) pair is encoded once; a new vocabulary only encodes the texts not seen yet.
Why bounded (least recently used first out): query phrases are free text, so an unbounded
cache grows with every phrase a user ever asks for on a robot that runs for weeks. The
active vocabulary's embeddings are held apart from the cache and never evicted.
Validation lives here so that the start-up parameter and the service share one rule set.
Two locks: encoding (the cache and the encoder, one text batch at a time) never holds the lock
of the active (labels, embeddings) pair, so readers of the vocabulary (a segmentation run
being published) are not held up while a new vocabulary is being encoded; the pair switches
at once when the encoding is done.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np


class VocabularyError(ValueError):
    """A vocabulary that breaks the rules; the message says which rule and which label."""


def validate_labels(labels: Sequence[str], max_labels: int, max_length: int) -> list[str]:
    """Trimmed labels, or VocabularyError: not empty, each non-empty and at most
    ``max_length`` characters, at most ``max_labels``, unique after trimming (case-sensitive
    duplicates after lower-casing are also refused: they would split the scores)."""
    out = [str(s).strip() for s in labels]
    if not out:
        raise VocabularyError("vocabulary is empty: give at least one label")
    if len(out) > max_labels:
        raise VocabularyError(f"vocabulary has {len(out)} labels; the limit is {max_labels} "
                              "(parameter max_labels)")
    for i, s in enumerate(out):
        if not s:
            raise VocabularyError(f"label {i} is empty after trimming")
        if len(s) > max_length:
            raise VocabularyError(f"label {i} ({s[:20]!r}...) has {len(s)} characters; the "
                                  f"limit is {max_length} (parameter max_label_length)")
    seen: dict[str, int] = {}
    for i, s in enumerate(out):
        key = s.lower()
        if key in seen:
            raise VocabularyError(f"duplicate label {s!r} (labels {seen[key]} and {i}); "
                                  "labels must be unique after trimming")
        seen[key] = i
    return out


def validate_template(template: str) -> str:
    """A prompt template must contain exactly one "{}"."""
    if template.count("{}") != 1:
        raise VocabularyError(f"prompt template {template!r} must contain exactly one '{{}}'")
    return template


class Vocabulary:
    """Active labels + their unit text embeddings [M, D], with an encode-once cache."""

    def __init__(self, encoder: Any, max_labels: int, max_length: int,
                 template: str = "{}", cache_size: int = 4096) -> None:
        if cache_size < 1:
            raise ValueError(f"cache_size must be >= 1, got {cache_size}")
        self.encoder = encoder
        self.max_labels = max_labels
        self.max_length = max_length
        self.template = validate_template(template)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # the active labels, embeddings and template
        self._encode_lock = threading.Lock()  # the cache and the encoder
        self.labels: list[str] = []
        self.embeddings = np.zeros((0, int(getattr(encoder, "dim", 0))), np.float32)
        self.encoded_texts = 0  # texts sent to the encoder so far (the cache's misses)

    def encode(self, texts: Sequence[str], template: str | None = None) -> tuple[np.ndarray, int]:
        """Embeddings [len(texts), D] through the cache; returns (embeddings, newly encoded)."""
        with self._encode_lock:
            return self._encode(texts, template)

    def _encode(self, texts: Sequence[str], template: str | None) -> tuple[np.ndarray, int]:
        tpl = self.template if template is None else template
        found: dict[str, np.ndarray] = {}
        for t in dict.fromkeys(texts):
            e = self._cache.get((tpl, t))
            if e is not None:
                self._cache.move_to_end((tpl, t))
                found[t] = e
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            emb = np.asarray(self.encoder.encode_texts(missing, template=tpl), np.float32)
            for t, e in zip(missing, emb):
                found[t] = e
                self._cache[(tpl, t)] = e
            self.encoded_texts += len(missing)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return np.stack([found[t] for t in texts]), len(missing)

    @property
    def cached_texts(self) -> int:
        """Entries in the (bounded) cache."""
        return len(self._cache)

    def set(self, labels: Sequence[str], template: str = "") -> tuple[list[str], int]:
        """Validate and activate; returns (active labels, texts newly encoded).

        Nothing changes when validation or encoding fails. Concurrent calls take effect in
        the order they start encoding; readers see the old pair until the switch.
        """
        clean = validate_labels(labels, self.max_labels, self.max_length)
        with self._encode_lock:
            tpl = validate_template(template) if template else self.template
            emb, n_new = self._encode(clean, tpl)
            with self._lock:
                self.labels, self.embeddings, self.template = clean, emb, tpl
        return list(clean), n_new

    def current(self) -> tuple[list[str], np.ndarray]:
        """A consistent (labels, embeddings) pair."""
        with self._lock:
            return list(self.labels), self.embeddings

    def phrase(self, text: str) -> np.ndarray:
        """Embedding [D] of a free-text query phrase (cached like labels)."""
        return self.encode([text])[0][0]
