"""Generic concept vocabularies: word lists that name no evaluation class on purpose.

Relational distillation (``folk_model.train.losses.relational_loss``) compares teacher and
student embeddings through their similarity to many concept texts. That keeps what labelling
needs, the *ranking* of words, for objects nobody annotated. The concept set must be generic,
not the evaluation vocabulary, or the held-out classes would leak into training.

- ``imagenet1k``: the 1000 ImageNet-1k classes by their synonym lists ("pot, flowerpot"),
  from timm (offline). For the offline ConSE backend this is the teacher's own basis; for
  CLIP-style backends it is a broad set of everyday object words.
"""

from __future__ import annotations

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
