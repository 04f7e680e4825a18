"""vidqa.models.clip_model: the offline factory, batched preprocessing and the text/image encoders,
on a tiny random CLIP built from open_clip's real ViT-B-32 config."""

from __future__ import annotations

import hashlib
import json
import urllib.request

import numpy as np
import open_clip
import open_clip.factory
import open_clip.pretrained
import PIL
import pytest
import torch
from open_clip.transform import PreprocessCfg, image_transform, image_transform_v2
from PIL import Image

from clip_fixtures import TINY_CLIP_NAME, tiny_clip_config, write_tiny_clip_config
from vidqa.errors import ScorerError
from vidqa.models.resident import release_resident
from vidqa.models.clip_model import (
    FramePreprocess,
    canonical_clip_id,
    encode_images,
    encode_text_tokens,
    encode_texts,
    load_clip,
    pil_resamples_vertically_first,
)

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
# One uint8 step after normalisation: PIL's fixed-point resampling may differ from float by 1.
ONE_LEVEL = 1.0 / 255.0 / min(OPENAI_STD) + 1e-6


@pytest.fixture(autouse=True)
def _fresh_model_cache():
    release_resident("clip")
    yield
    release_resident("clip")


@pytest.fixture(scope="module")
def tiny_config_path(tmp_path_factory):
    return write_tiny_clip_config(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture
def tiny(tiny_config_path):
    return load_clip(str(tiny_config_path), None)


def _frames(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth patterns plus noise: exercises both the filter and the uint8 rounding."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    out = []
    for _ in range(n):
        phase = rng.uniform(0, 6, 3)
        img = np.stack([128 + 100 * np.sin(x / 7.0 + p) * np.cos(y / 5.0 - p) for p in phase], -1)
        out.append(np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8))
    return np.stack(out)


def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    for module in (open_clip.pretrained, open_clip.factory):
        for fn in ("download_pretrained", "download_pretrained_from_hf", "download_pretrained_from_url"):
            if hasattr(module, fn):
                monkeypatch.setattr(module, fn, refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_factory_builds_a_seeded_random_model_once(tiny, tiny_config_path):
    assert tiny.name == TINY_CLIP_NAME and tiny.pretrained is None
    assert tiny.embed_dim == 32 and tiny.preprocess.size == 64
    assert tiny.preprocess.mean == OPENAI_MEAN and tiny.preprocess.resize_mode == "shortest"
    assert not tiny.model.training and tiny.device == torch.device("cpu")
    assert tiny.weights_id == "random-init:seed=0"
    expected = hashlib.sha256(json.dumps(tiny_clip_config(), sort_keys=True).encode()).hexdigest()
    assert tiny.identity()["config_sha256"] == expected
    assert load_clip(str(tiny_config_path), None) is tiny  # process-wide cache

    release_resident("clip")
    again = load_clip(str(tiny_config_path), None)
    assert again is not tiny
    for (name, a), b in zip(tiny.model.state_dict().items(), again.model.state_dict().values()):
        assert torch.equal(a, b), name  # random init is seeded: same config, same model


@pytest.mark.parametrize("shape", [(360, 640), (100, 150), (50, 40), (481, 271), (64, 64), (1280, 544), (90, 300)])
def test_batched_preprocessing_matches_open_clip_pil(tiny, shape):
    frames = _frames(3, *shape)
    ours = tiny.preprocess(frames)
    pil = image_transform_v2(PreprocessCfg(**tiny.model.visual.preprocess_cfg), is_train=False)
    theirs = torch.stack([pil(Image.fromarray(f)) for f in frames])
    assert ours.shape == theirs.shape == (3, 3, 64, 64) and ours.dtype == torch.float32
    assert torch.equal(ours, theirs)  # on the CPU, PIL resizes: the same pixels, bit for bit

    # The tensor resampler (frames on a GPU) is the same filter in float: one level at most,
    # on few pixels, also on portrait frames, where Pillow 13 resamples vertically first.
    tensor = tiny.preprocess(frames, resampler="tensor")
    diff = (tensor - theirs).abs()
    assert diff.max() <= ONE_LEVEL
    assert (diff > 1e-6).float().mean() < 2e-3


def test_the_tensor_resampler_takes_pils_pass_order():
    """Each pass rounds to uint8, so the order matters; PIL's single-axis resizes in the order
    pil_resamples_vertically_first names reproduce the two-axis resize of the installed PIL."""
    for height, width, out_h, out_w in [(1280, 544, 527, 224), (544, 1280, 224, 527), (600, 300, 200, 100),
                                        (500, 200, 100, 150), (200, 400, 300, 100)]:
        frame = Image.fromarray(_frames(1, height, width, seed=3)[0])
        both = np.asarray(frame.resize((out_w, out_h), Image.BICUBIC)).astype(int)
        rows_first = np.asarray(frame.resize((width, out_h), Image.BICUBIC).resize((out_w, out_h), Image.BICUBIC))
        cols_first = np.asarray(frame.resize((out_w, height), Image.BICUBIC).resize((out_w, out_h), Image.BICUBIC))
        vertical_first = pil_resamples_vertically_first(height, width, out_h, out_w)
        if int(PIL.__version__.split(".")[0]) >= 13:
            assert np.array_equal(both, rows_first if vertical_first else cols_first), (height, width)
        else:
            assert np.array_equal(both, cols_first)  # older Pillow: always horizontal first
        assert not np.array_equal(rows_first, cols_first)  # the order is visible in the pixels
    assert pil_resamples_vertically_first(1280, 544, 527, 224) and not pil_resamples_vertically_first(544, 1280, 224, 527)


def test_preprocessing_at_224_bilinear_and_squash_matches_open_clip():
    frames = _frames(2, 300, 533, seed=1)
    for interpolation, resize_mode in [("bicubic", "shortest"), ("bilinear", "squash")]:
        preprocess = FramePreprocess(224, OPENAI_MEAN, OPENAI_STD, interpolation, resize_mode)
        pil = image_transform(224, False, OPENAI_MEAN, OPENAI_STD, resize_mode, interpolation)
        theirs = torch.stack([pil(Image.fromarray(f)) for f in frames])
        assert torch.equal(preprocess(frames), theirs), (interpolation, resize_mode)
        assert (preprocess(frames, resampler="tensor") - theirs).abs().max() <= ONE_LEVEL, (interpolation, resize_mode)


def test_encode_images_is_normalised_and_batch_invariant(tiny):
    frames = _frames(5, 72, 96, seed=2)
    emb = encode_images(tiny, frames, batch_size=2)
    assert emb.shape == (5, 32) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=-1), torch.ones(5), atol=1e-6)
    assert torch.allclose(emb, encode_images(tiny, frames, batch_size=64), atol=1e-6)
    direct = torch.nn.functional.normalize(tiny.model.encode_image(tiny.preprocess(frames)), dim=-1)
    assert torch.allclose(emb, direct, atol=1e-6)
    assert encode_images(tiny, frames[:0]).shape == (0, 32)


def test_text_tokens_global_equals_encode_text(tiny):
    texts = ["a dog runs on the grass", "a dog", "x", "a cat " * 60]  # the last one is truncated
    out = encode_text_tokens(tiny, texts, batch_size=3)
    ids = tiny.tokenizer(texts)
    assert torch.equal(out.token_ids, ids)
    expected = torch.nn.functional.normalize(tiny.model.encode_text(ids), dim=-1)
    assert torch.allclose(out.global_embeddings, expected, atol=1e-6)
    assert torch.allclose(encode_texts(tiny, texts), expected, atol=1e-6)

    assert out.token_embeddings.shape == (4, 77, 32) and out.mask.shape == (4, 77)
    assert out.mask.dtype == torch.bool
    lengths = out.mask.sum(dim=1)
    assert lengths.tolist() == [8, 4, 3, 77]  # SOS + words + EOS
    for row, n in enumerate(lengths.tolist()):
        assert ids[row, 0] == 49406 and ids[row, n - 1] == 49407  # SOS ... EOS inclusive
        assert not out.mask[row, n:].any()
        # the global embedding is the EOS token's projected state
        assert torch.allclose(out.token_embeddings[row, n - 1], out.global_embeddings[row], atol=1e-6)
    real = out.token_embeddings[out.mask]
    assert torch.allclose(real.norm(dim=-1), torch.ones(len(real)), atol=1e-5)
    # causal text transformer: "a dog" shares SOS, "a", "dog" states with "a dog runs ..."
    assert torch.allclose(out.token_embeddings[0, :3], out.token_embeddings[1, :3], atol=1e-6)
    assert not torch.allclose(out.token_embeddings[0, 3], out.token_embeddings[1, 3], atol=1e-3)


def test_missing_weights_name_the_file_and_how_to_get_them(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    cache, models = tmp_path / "cache", tmp_path / "models"
    cache.mkdir()
    models.mkdir()
    for name, pretrained in [("ViT-B-32", "openai"), ("openai/clip-vit-base-patch32", None)]:
        with pytest.raises(ScorerError) as err:
            load_clip(name, pretrained, cache_dir=cache, models_dir=models)
        message = str(err.value)
        assert "ViT-B-32" in message and "'openai'" in message
        assert str(models / "open_clip" / "ViT-B-32" / "openai" / "open_clip_model.safetensors") in message
        assert str(cache / "models--timm--vit_base_patch32_clip_224.openai") in message
        assert "hf download timm/vit_base_patch32_clip_224.openai" in message
        assert "VIDQA_MODELS_DIR" in message

    with pytest.raises(ScorerError, match=r"hf download laion/CLIP-ViT-B-32-laion2B-s34B-b79K"):
        load_clip("ViT-B-32", "hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", cache_dir=cache, models_dir=models)
    with pytest.raises(ScorerError, match="not found"):
        load_clip("ViT-B-32", str(tmp_path / "nope.pt"), cache_dir=cache)
    with pytest.raises(ScorerError, match="not an open_clip tag"):
        load_clip("ViT-B-32", "no_such_tag", cache_dir=cache, models_dir=models)


def _other_weights(file):
    """A checkpoint for the tiny config whose weights differ from the seed-0 random init."""
    model = open_clip.create_model(TINY_CLIP_NAME, pretrained_text=False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), file)
    return model.state_dict()


def _assert_loaded(clip, state, file):
    for name, value in clip.model.state_dict().items():
        assert torch.equal(value, state[name]), name
    assert clip.weights_sha256 == hashlib.sha256(file.read_bytes()).hexdigest()


def test_weights_come_from_a_file_the_models_dir_or_the_hub_cache(tiny_config_path, tmp_path, monkeypatch):
    _no_network(monkeypatch)
    load_clip(str(tiny_config_path), None)  # registers the tiny config with open_clip
    weights = tmp_path / "file" / "tiny.bin"
    state = _other_weights(weights)

    from_file = load_clip(str(tiny_config_path), str(weights))
    _assert_loaded(from_file, state, weights)
    assert from_file.pretrained == str(weights.resolve())

    # An open_clip tag for the tiny model, trained with QuickGELU like the OpenAI tags.
    tag_cfg = dict(hf_hub="vidqa-test/tiny-clip/", quick_gelu=True, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, TINY_CLIP_NAME, {"testtag": tag_cfg})
    in_models_dir = tmp_path / "models" / "open_clip" / TINY_CLIP_NAME / "testtag" / "open_clip_pytorch_model.bin"
    in_models_dir.parent.mkdir(parents=True)
    in_models_dir.write_bytes(weights.read_bytes())
    clip = load_clip(str(tiny_config_path), "testtag", cache_dir=tmp_path / "empty", models_dir=tmp_path / "models")
    _assert_loaded(clip, state, in_models_dir)
    assert clip.preprocess.mean == (0.5, 0.5, 0.5) and clip.pretrained == "testtag"

    # The same tag found in a Hugging Face cache laid out as `hf download` leaves it.
    release_resident("clip")
    repo = tmp_path / "hf" / "models--vidqa-test--tiny-clip"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_pytorch_model.bin").write_bytes(weights.read_bytes())
    clip = load_clip(str(tiny_config_path), "testtag", cache_dir=tmp_path / "hf", models_dir=tmp_path / "none")
    _assert_loaded(clip, state, snapshot / "open_clip_pytorch_model.bin")

    # An open_clip Hub repository (config + weights) through hf-hub:.
    release_resident("clip")
    hub = tmp_path / "hf" / "models--vidqa-test--tiny-hub"
    (hub / "refs").mkdir(parents=True)
    (hub / "refs" / "main").write_text("feed")
    (hub / "snapshots" / "feed").mkdir(parents=True)
    config = {"model_cfg": tiny_clip_config(), "preprocess_cfg": {"mean": OPENAI_MEAN, "std": OPENAI_STD}}
    (hub / "snapshots" / "feed" / "open_clip_config.json").write_text(json.dumps(config))
    (hub / "snapshots" / "feed" / "open_clip_pytorch_model.bin").write_bytes(weights.read_bytes())
    clip = load_clip("ViT-B-32", "hf-hub:vidqa-test/tiny-hub", cache_dir=tmp_path / "hf")
    _assert_loaded(clip, state, hub / "snapshots" / "feed" / "open_clip_pytorch_model.bin")
    assert clip.pretrained == "hf-hub:vidqa-test/tiny-hub" and clip.embed_dim == 32


def test_accepted_spellings():
    assert canonical_clip_id("openai/clip-vit-base-patch32", None) == ("ViT-B-32", "openai")
    assert canonical_clip_id("hf-hub:openai/clip-vit-large-patch14", None) == ("ViT-L-14", "openai")
    assert canonical_clip_id("ViT-L/14", "openai") == ("ViT-L-14", "openai")
    assert canonical_clip_id("ViT-B-32", "openai/clip-vit-base-patch32") == ("ViT-B-32", "openai")
    with pytest.raises(ScorerError):
        canonical_clip_id("ViT-L-14", "openai/clip-vit-base-patch32")
    with pytest.raises(ValueError):
        load_clip("ViT-B-32", None, precision="fp8")
