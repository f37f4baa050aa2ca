"""Generic concept vocabularies for relational distillation.

Relational distillation (``folk_model.train.losses.relational_loss``) compares teacher and
student embeddings through their similarity to many concept texts. That keeps what labelling
needs, the *ranking* of words, for objects nobody annotated. The concept set is a generic word
list, not chosen from the evaluation vocabulary, and no annotation is ever attached to it: the
targets are the teacher's own similarities. A generic list can still contain words for
held-out classes (ImageNet-1k has "bathtub", "refrigerator", "ashcan, trash can");
``drop_named`` removes those for a stricter protocol (``TrainConfig.concepts_drop_novel``).

- ``imagenet1k``: the 1000 ImageNet-1k classes by their synonym lists ("pot, flowerpot"),
  from timm (offline). For the offline ConSE backend this is the teacher's own basis; for
  CLIP-style backends it is a broad set of everyday object words.
"""

from __future__ import annotations

import re
from collections.abc import Callable

CONCEPT_SETS: dict[str, str] = {
    "imagenet1k": "the 1000 ImageNet-1k classes by their synonym lists (timm)",
}


def _imagenet1k() -> list[str]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(1000)]


_LOADERS: dict[str, Callable[[], list[str]]] = {"imagenet1k": _imagenet1k}


def concept_names(name: str) -> list[str]:
    """The words of concept set ``name`` (one of ``CONCEPT_SETS``)."""
    if name not in _LOADERS:
        raise ValueError(f"unknown concept set {name!r}; known: {sorted(CONCEPT_SETS)}")
    return _LOADERS[name]()


def _phrase_in(phrase: str, text: str) -> bool:
    return re.search(r"(?<![a-z])" + re.escape(phrase) + r"(?![a-z])", text) is not None


def drop_named(names: list[str],
               classes: list[str] | tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Split ``names`` into (kept, dropped): a concept is dropped when any class name occurs in
    it as a whole word or phrase, case-insensitively ("table lamp" names "lamp"; "cupboard"
    does not name "cup"). Synonyms that share no word ("studio couch" for "sofa") stay."""
    lowered = [c.lower() for c in classes]
    kept, dropped = [], []
    for n in names:
        (dropped if any(_phrase_in(c, n.lower()) for c in lowered) else kept).append(n)
    return kept, dropped
