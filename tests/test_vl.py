"""Vision-language encoders: unit vectors of the right D, the text cache, zero-shot sanity."""

from __future__ import annotations

import numpy as np
import pytest

from folk_model.config import VLConfig
from folk_model.vl import TextCache, create_text_encoder, create_vl_encoder
from folk_model.vl.image_prep import letterbox


def _unit(x: np.ndarray) -> bool:
    return bool(np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4))


@pytest.fixture(scope="module")
def offline():
    """The offline encoder with the default (persistent) text cache: the 1000 ImageNet class
    embeddings are computed once per machine, not once per test run."""
    return create_vl_encoder(VLConfig(backend="offline"))


def test_letterbox_keeps_aspect():
    crop = np.full((10, 40, 3), 255, np.uint8)
    out = letterbox(crop, 32)
    assert out.shape == (32, 32, 3)
    assert out[0, 16].tolist() == [127, 127, 127]  # padded rows above the crop
    assert out[16, 16].tolist() == [255, 255, 255]
    assert letterbox(np.zeros((0, 5, 3), np.uint8), 8).shape == (8, 8, 3)


def test_cache_hits_and_persists(tmp_path):
    calls: list[list[str]] = []

    def enc(prompts: list[str]) -> np.ndarray:
        calls.append(prompts)
        v = np.stack([np.eye(4, dtype=np.float32)[len(p) % 4] for p in prompts])
        return v

    c = TextCache(tmp_path, "b", "m", 4)
    a = c.get_or_encode(["chair", "table", "chair"], enc)
    assert a.shape == (3, 4) and calls == [["chair", "table"]]
    b = c.get_or_encode(["table", "chair"], enc)
    assert len(calls) == 1 and c.hits >= 2
    np.testing.assert_array_equal(a[1], b[0])
    # A new cache object for the same key space reads the disk; another model does not.
    c2 = TextCache(tmp_path, "b", "m", 4)
    c2.get_or_encode(["chair"], enc)
    assert len(calls) == 1 and c2.hits == 1
    c3 = TextCache(tmp_path, "b", "other", 4)
    c3.get_or_encode(["chair"], enc)
    assert len(calls) == 2
    assert c.get_or_encode([], enc).shape == (0, 4)


def test_offline_texts_unit_384_and_text_only_path(tmp_path):
    enc = create_text_encoder(VLConfig(backend="offline", cache_dir=str(tmp_path)))
    t = enc.encode_texts(["chair", "a wooden table"])
    assert t.shape == (2, 384) and t.dtype == np.float32 and _unit(t)
    assert enc._image_model is None  # texts never load the image classifier
    hits = enc.cache.hits
    t2 = enc.encode_texts(["chair"])
    assert enc.cache.hits == hits + 1
    np.testing.assert_allclose(t2[0], t[0])
    # Template is part of the key: same word, another prompt, another vector.
    t3 = enc.encode_texts(["chair"], template="a photo of a {}")
    assert not np.allclose(t3[0], t[0])
    assert enc.info() == {"backend": "offline", "model": "tf_efficientnet_lite0+all-MiniLM-L6-v2",
                          "dim": 384, "top_t": 10}


def test_offline_warm_up_loads_the_text_model_only(tmp_path):
    enc = create_text_encoder(VLConfig(backend="offline", cache_dir=str(tmp_path)))
    enc.warm_up()
    assert enc._text_model is not None and enc._image_model is None
    assert len(enc.cache) == 0 and enc.cache.misses == 0  # the warm-up text is not cached


def test_offline_ranks_coffee(offline):
    from skimage import data

    labels = ["a cup of coffee", "a bicycle", "a bed", "a toilet", "a mountain", "a dog"]
    img = offline.encode_images([data.coffee()])
    assert img.shape == (1, 384) and _unit(img)
    sim = img @ offline.encode_texts(labels).T
    assert int(np.argmax(sim[0])) == 0, sim
    assert offline.encode_images([]).shape == (0, 384)


def test_open_clip_random_weights(tmp_path):
    pytest.importorskip("open_clip")
    cfg = VLConfig(backend="open_clip", model="ViT-S-32", pretrained="", image_size=64,
                   cache_dir=str(tmp_path), template="a photo of a {}.")
    enc = create_vl_encoder(cfg)
    assert enc.dim == 384 and enc.model == "ViT-S-32/random"
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (30, 50, 3), np.uint8), rng.integers(0, 255, (70, 20, 3),
                                                                        np.uint8)]
    im = enc.encode_images(crops)
    assert im.shape == (2, enc.dim) and im.dtype == np.float32 and _unit(im)
    tx = enc.encode_texts(["chair", "table", "lamp"])
    assert tx.shape == (3, enc.dim) and _unit(tx)
    misses = enc.cache.misses
    enc.encode_texts(["lamp", "chair"])
    assert enc.cache.misses == misses and enc.cache.hits >= 2
    # Text-only: the image tower is dropped; texts come from the shared disk cache or model.
    txt_only = create_text_encoder(cfg)
    np.testing.assert_allclose(txt_only.encode_texts(["chair"])[0], tx[0], atol=1e-6)
    tx2 = txt_only.encode_texts(["sofa"])  # a miss: runs the text tower
    assert tx2.shape == (1, enc.dim) and txt_only._net.visual is None
    # Random weights are seeded: the same "random" model on both sides of the cache.
    np.testing.assert_allclose(tx2[0], enc.encode_texts(["sofa"])[0], atol=1e-5)
    with pytest.raises(RuntimeError):
        txt_only.encode_images(crops)


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown VL backend"):
        create_vl_encoder(VLConfig(backend="nope"))
