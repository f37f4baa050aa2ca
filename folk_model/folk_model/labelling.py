"""Name instances with the words of a vocabulary: cosine similarity in the VL space.

This is the one place where embeddings meet text; the teacher baseline, the student, the
evaluator and the ROS node all label through ``label_embeddings``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Labelling:
    """Labels for K instances.

    Attributes:
        label_index: int [K] index into the vocabulary of each instance's best label.
        score: float32 [K] softmax probability of that label (temperature ``temperature``).
        topk_index: int [K, k] indices of the k best labels, best first.
        topk_score: float32 [K, k] their probabilities.
        similarity: float32 [K, M] raw cosine similarities.
    """

    label_index: np.ndarray
    score: np.ndarray
    topk_index: np.ndarray
    topk_score: np.ndarray
    similarity: np.ndarray


def normalize(x: np.ndarray, axis: int = -1, eps: float = 1e-8) -> np.ndarray:
    """Unit-normalise rows; zero rows stay zero instead of becoming NaN."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(n, eps)


ScoreMap = tuple[float, float] | np.ndarray


def label_embeddings(
    embeddings: np.ndarray,
    text_embeddings: np.ndarray,
    top_k: int = 3,
    temperature: float = 0.01,
    score_map: ScoreMap = (1.0, 0.0),
    word_bias: np.ndarray | None = None,
) -> Labelling:
    """Label instance embeddings [K, D] against text embeddings [M, D].

    Scores are a softmax over cosine similarities divided by ``temperature``, so they read as
    "how sure among these words". The student's temperature is fitted on dev rooms so that
    its scores are calibrated (``StudentConfig.label_temperature``, set by ``folk-calibrate``;
    pass ``segmenter.cfg.label_temperature``); 0.01, the default, is the uncalibrated
    CLIP-like value that the teacher pipeline keeps. ``score_map`` is the weights' Platt
    map of the scores (``StudentConfig.label_score_map``, ``calibrated_scores``); it changes
    the scores, never their order. It is one (a, b) for every word, or a map per word of the
    vocabulary, float [M, 2] (``word_score_maps``): then each instance's scores, its top-k
    included, go through the map of its best word, so that a row's scores keep their order.
    ``word_bias`` (float [M], ``word_biases``) is added to each word's cosine before the
    ranking and the softmax: the weights' handicap on the words they trained on
    (``StudentConfig.label_known_word_handicap``). ``similarity`` stays the raw cosine.
    """
    emb = normalize(np.atleast_2d(embeddings))
    txt = normalize(np.atleast_2d(text_embeddings))
    if txt.shape[0] == 0:
        raise ValueError("label_embeddings: the vocabulary is empty")
    if emb.shape[0] and emb.shape[1] != txt.shape[1]:
        raise ValueError(f"embedding dim {emb.shape[1]} != text embedding dim {txt.shape[1]}")
    k = max(1, min(top_k, txt.shape[0]))
    if emb.shape[0] == 0:
        z = np.zeros((0,), np.int64)
        return Labelling(z, z.astype(np.float32), np.zeros((0, k), np.int64),
                         np.zeros((0, k), np.float32), np.zeros((0, txt.shape[0]), np.float32))
    sim = emb @ txt.T
    biased = sim if word_bias is None else sim + _bias_row(word_bias, txt.shape[0])
    logits = biased / temperature
    logits -= logits.max(axis=1, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(axis=1, keepdims=True)
    order = np.argsort(-prob, axis=1, kind="stable")[:, :k]
    row_map = score_map
    if np.ndim(score_map) == 2:
        maps = np.asarray(score_map, np.float64)
        if maps.shape != (txt.shape[0], 2):
            raise ValueError(f"score maps {maps.shape} != one (a, b) per word "
                             f"({txt.shape[0]}, 2)")
        row_map = maps[order[:, 0]][:, None, :]  # [K, 1, 2]: each row the map of its best word
    topk_score = calibrated_scores(np.take_along_axis(prob, order, axis=1), row_map)
    return Labelling(order[:, 0], topk_score[:, 0], order, topk_score, sim.astype(np.float32))


def _bias_row(word_bias: np.ndarray, n_words: int) -> np.ndarray:
    b = np.asarray(word_bias, np.float32).reshape(-1)
    if b.shape[0] != n_words:
        raise ValueError(f"word_bias has {b.shape[0]} values for {n_words} words")
    return b[None, :]


def word_biases(words: Sequence[str], known_words: Sequence[str],
                handicap: float = 0.0) -> np.ndarray:
    """float32 [M]: ``-handicap`` for each of ``words`` among ``known_words`` (the classes
    the weights trained on), 0 for any other word.

    Why: distillation with a label loss pulls the student's embeddings towards its training
    words, so an object of a class it never trained on lands nearer a training word than its
    own (calibrated stacking, Chao et al., ECCV 2016). Subtracting a constant, chosen on dev
    rooms, from the training words' cosines rebalances the two (docs/results/world.md,
    session 24)."""
    if handicap == 0.0 or not len(known_words):
        return np.zeros(len(words), np.float32)
    return handicap_biases(new_words(words, known_words), handicap)


def handicap_biases(new_word: np.ndarray, handicap: float) -> np.ndarray:
    """float32 [M]: ``-handicap`` for each word that ``new_word`` (bool [M]) does not mark,
    0 for the new words (``word_biases`` on words already sorted by kind)."""
    return np.where(np.asarray(new_word, bool), 0.0, -float(handicap)).astype(np.float32)


def calibrated_scores(prob: np.ndarray, score_map: ScoreMap = (1.0, 0.0)) -> np.ndarray:
    """Softmax scores mapped by a Platt map (a, b): sigmoid(a logit(p) + b), float32.

    Fitted on dev rooms after the temperature (``folk-calibrate``): a monotone map, so
    rankings and thresholds keep their order; (1, 0) returns the scores unchanged.
    ``score_map`` may also be an array whose last axis is (a, b), broadcast against ``prob``
    (a map per score).
    """
    p = np.asarray(prob, np.float64)
    m = np.asarray(score_map, np.float64)
    if m.shape[-1:] != (2,):
        raise ValueError(f"a score map is (a, b), got shape {m.shape}")
    a, b = m[..., 0], m[..., 1]
    if m.ndim == 1 and a == 1.0 and b == 0.0:
        return p.astype(np.float32)
    q = np.clip(p, 1e-12, 1 - 1e-12)
    z = a * (np.log(q) - np.log1p(-q)) + b
    return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)


def word_key(word: str) -> str:
    """How two spellings of a word are compared: case and surrounding space ignored."""
    return " ".join(word.lower().split())


def word_score_maps(words: Sequence[str], score_map: tuple[float, float],
                    new_word_map: tuple[float, float] | None = None,
                    known_words: Sequence[str] = ()) -> np.ndarray:
    """The Platt map of each word's labels, float [M, 2]: ``score_map`` for a word of
    ``known_words`` (the classes the weights trained on), ``new_word_map`` for any other.

    Why two: on dev rooms the same score meant different odds by the kind of word predicted
    (a training word was right less often than its score said, a word the weights never
    trained on far more often; docs/results/world.md, sessions 22-23). With no
    ``new_word_map`` or no ``known_words``, every word gets ``score_map``.
    """
    if new_word_map is None or not len(known_words):
        return score_maps_by_kind(np.zeros(len(words), bool), score_map)
    return score_maps_by_kind(new_words(words, known_words), score_map, new_word_map)


def new_words(words: Sequence[str], known_words: Sequence[str]) -> np.ndarray:
    """bool [M]: which of ``words`` are not among ``known_words`` (``word_key`` spelling)."""
    known = {word_key(w) for w in known_words}
    return np.array([word_key(w) not in known for w in words], bool).reshape(len(words))


def score_maps_by_kind(new_word: np.ndarray, score_map: tuple[float, float],
                       new_word_map: tuple[float, float] | None = None) -> np.ndarray:
    """float [M, 2]: ``score_map`` for each word, ``new_word_map`` (when given) for the words
    ``new_word`` (bool [M]) marks."""
    new = np.asarray(new_word, bool).reshape(-1)
    maps = np.tile(np.asarray(score_map, np.float64), (len(new), 1)).reshape(len(new), 2)
    if new_word_map is not None:
        maps[new] = np.asarray(new_word_map, np.float64)
    return maps


def phrase_scores(embeddings: np.ndarray, phrase_embedding: np.ndarray,
                  text_embeddings: np.ndarray, temperature: float = 0.01,
                  same_cos: float = 0.999,
                  score_map: tuple[float, float] = (1.0, 0.0),
                  phrase_bias: float = 0.0,
                  word_bias: np.ndarray | None = None) -> np.ndarray:
    """Probability [K] that a free-text phrase, rather than any word of the vocabulary, names
    each instance: the phrase's share of softmax(similarity / ``temperature``) over the
    phrase and the vocabulary's words (a word whose text embedding is the phrase's, cosine
    above ``same_cos``, is left out so that it does not split the phrase's share).

    With the student's calibrated temperature this is a score a user can threshold, on the
    same scale as the label scores (``score_map``, as ``label_embeddings``); ranking by it
    ranks by the calibrated similarity. An empty vocabulary gives 1 for every instance
    (nothing competes with the phrase). ``phrase_bias`` and ``word_bias`` [M] are the
    phrase's and the words' handicaps, as in ``label_embeddings``.
    """
    emb = normalize(np.atleast_2d(embeddings))
    if len(embeddings) == 0:
        return np.zeros((0,), np.float32)
    phrase = normalize(np.asarray(phrase_embedding).reshape(1, -1))
    txt = normalize(np.asarray(text_embeddings, np.float32).reshape(-1, phrase.shape[1]))
    bias = (np.zeros(txt.shape[0], np.float32) if word_bias is None
            else _bias_row(word_bias, txt.shape[0])[0])
    apart = (txt @ phrase[0]) <= same_cos
    txt, bias = txt[apart], bias[apart]
    logits = np.concatenate([emb @ phrase.T + phrase_bias, emb @ txt.T + bias[None, :]],
                            axis=1).astype(np.float64)
    logits /= temperature
    logits -= logits.max(axis=1, keepdims=True)
    prob = np.exp(logits)
    return calibrated_scores(prob[:, 0] / prob.sum(axis=1), score_map)


def vocabulary_from_strings(labels: Sequence[str]) -> list[str]:
    """Trimmed labels in order (validation lives with the caller that knows its limits)."""
    return [s.strip() for s in labels]
