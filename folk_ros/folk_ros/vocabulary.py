"""The active vocabulary and its cached text embeddings (ROS-free).

Why a cache: relabelling must be instant and the text encoder is the slow part, so every
(template, text) pair is encoded once; a new vocabulary only encodes the texts not seen yet.
Validation lives here so that the start-up parameter and the service share one rule set.
"""

from __future__ import annotations

import threading
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
                 template: str = "{}") -> None:
        self.encoder = encoder
        self.max_labels = max_labels
        self.max_length = max_length
        self.template = validate_template(template)
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        self._lock = threading.Lock()
        self.labels: list[str] = []
        self.embeddings = np.zeros((0, int(getattr(encoder, "dim", 0))), np.float32)
        self.encoded_texts = 0  # texts sent to the encoder so far (the cache's misses)

    def encode(self, texts: Sequence[str], template: str | None = None) -> tuple[np.ndarray, int]:
        """Embeddings [len(texts), D] through the cache; returns (embeddings, newly encoded)."""
        tpl = self.template if template is None else template
        missing = [t for t in dict.fromkeys(texts) if (tpl, t) not in self._cache]
        if missing:
            emb = np.asarray(self.encoder.encode_texts(missing, template=tpl), np.float32)
            for t, e in zip(missing, emb):
                self._cache[(tpl, t)] = e
            self.encoded_texts += len(missing)
        return np.stack([self._cache[(tpl, t)] for t in texts]), len(missing)

    def set(self, labels: Sequence[str], template: str = "") -> tuple[list[str], int]:
        """Validate and activate; returns (active labels, texts newly encoded).

        Nothing changes when validation or encoding fails.
        """
        clean = validate_labels(labels, self.max_labels, self.max_length)
        tpl = validate_template(template) if template else self.template
        with self._lock:
            emb, n_new = self.encode(clean, tpl)
            self.labels, self.embeddings, self.template = clean, emb, tpl
        return list(clean), n_new

    def current(self) -> tuple[list[str], np.ndarray]:
        """A consistent (labels, embeddings) pair."""
        with self._lock:
            return list(self.labels), self.embeddings

    def phrase(self, text: str) -> np.ndarray:
        """Embedding [D] of a free-text query phrase (cached like labels)."""
        with self._lock:
            return self.encode([text])[0][0]
