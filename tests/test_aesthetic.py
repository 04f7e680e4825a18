"""LAION aesthetic heads: the real checkpoints in ../shared/models load strictly and give the
published numbers on the published CLIP embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidqa.errors import ScorerError
from vidqa.models.aesthetic import aesthetic_scores, load_aesthetic_head

from conftest import SHARED

MODELS = SHARED / "models"
HEADS = MODELS / "laion-aesthetic"
MLP_FILE = HEADS / "sac+logos+ava1-l14-linearMSE.pth"
# models/README.md, measured on embeddings/vit_l_14/rating{0..9}.npy
MLP_TABLE = [1.655, 2.359, 3.070, 3.672, 4.238, 4.701, 5.073, 5.365, 5.577, 5.747]
LINEAR_L14_TABLE = [-2.458, -0.138, 1.895, 3.585, 5.100, 6.470, 7.787, 9.048, 10.226, 11.304]


def rating_embeddings(model: str) -> torch.Tensor:
    return torch.from_numpy(
        np.concatenate([np.load(HEADS / "embeddings" / model / f"rating{i}.npy") for i in range(10)])
    )


def test_improved_mlp_head_reproduces_the_published_table():
    head = load_aesthetic_head(MLP_FILE)  # tensors saved on cuda:0: must map to CPU
    assert head.kind == "mlp" and head.embed_dim == 768
    scores = aesthetic_scores(head, rating_embeddings("vit_l_14"))
    assert scores.dtype == torch.float64 and scores.shape == (10,)
    np.testing.assert_allclose(scores.numpy(), MLP_TABLE, rtol=0, atol=1e-3)
    assert len(head.sha256) == 64 and head.identity()["file"] == MLP_FILE.name


def test_linear_v1_heads():
    l14 = load_aesthetic_head(HEADS / "sa_0_4_vit_l_14_linear.pth")
    assert l14.kind == "linear" and l14.embed_dim == 768
    np.testing.assert_allclose(
        aesthetic_scores(l14, rating_embeddings("vit_l_14")).numpy(), LINEAR_L14_TABLE, rtol=0, atol=1e-3
    )

    b32_file = HEADS / "sa_0_4_vit_b_32_linear.pth"
    b32 = load_aesthetic_head(b32_file)
    assert b32.kind == "linear" and b32.embed_dim == 512
    embeddings = rating_embeddings("vit_b_32")
    scores = aesthetic_scores(b32, embeddings * 4.0)  # heads see unit vectors whatever the scale (x4 is exact)
    state = torch.load(b32_file, map_location="cpu", weights_only=True)
    e = embeddings.double().numpy()
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    expected = e @ state["weight"].double().numpy()[0] + state["bias"].double().item()
    assert np.isfinite(scores.numpy()).all()
    np.testing.assert_allclose(scores.numpy(), expected, rtol=0, atol=1e-12)
    assert scores[9] > scores[0]  # higher rating bucket, higher score

    with pytest.raises(ValueError, match="768"):
        aesthetic_scores(l14, embeddings)  # ViT-B/32 embeddings into a ViT-L/14 head


def test_renamed_or_reshaped_state_dicts_are_refused(tmp_path):
    state = torch.load(MLP_FILE, map_location="cpu", weights_only=True)
    renamed = tmp_path / "net.pth"
    torch.save({k.replace("layers.", "net."): v for k, v in state.items()}, renamed)
    with pytest.raises(ScorerError, match=r"net\.0\.weight"):
        load_aesthetic_head(renamed)

    reshaped = tmp_path / "reshaped.pth"
    torch.save({**state, "layers.2.weight": torch.zeros(128, 1000)}, reshaped)
    with pytest.raises(ScorerError, match="layers.2.weight"):
        load_aesthetic_head(reshaped)


def test_missing_head_says_where_to_get_it(tmp_path):
    with pytest.raises(ScorerError) as err:
        load_aesthetic_head(tmp_path / "sac+logos+ava1-l14-linearMSE.pth", models_dir=tmp_path)
    message = str(err.value)
    assert str(tmp_path / "sac+logos+ava1-l14-linearMSE.pth") in message
    assert "improved-aesthetic-predictor" in message and "VIDQA_MODELS_DIR" in message
    # a bare published name is found under <models_dir>/laion-aesthetic/
    head = load_aesthetic_head("sac+logos+ava1-l14-linearMSE.pth", models_dir=MODELS)
    assert head.kind == "mlp"
