"""EMScore against an independent float64 numpy implementation of REFERENCE.md section 1
(plain loops, nothing shared with vidqa.metrics.emscore), and end to end through a tiny CLIP."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from clip_fixtures import write_tiny_clip_config
from vidqa.metrics.emscore import (
    METRICS,
    SCORE_TYPES,
    emscore,
    frame_detail_records,
    frame_details,
    idf_table,
    idf_weights,
    token_id_lists,
)
from vidqa.models.clip_model import encode_images, encode_text_tokens, load_clip

SOS, EOS = 49406, 49407
TOL = 1e-10


# --------------------------------------------------------------------------- numpy reference


def np_unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def np_idf(corpus):
    """idf dict over distinct tokens, unseen value, EOS value (mean of all idf values)."""
    m = len(corpus)
    df = {}
    for doc in corpus:
        for t in set(doc):
            df[t] = df.get(t, 0) + 1
    idf = {t: math.log((m + 1) / (c + 1)) for t, c in df.items()}
    return idf, math.log(m + 1), sum(idf.values()) / len(idf)


def np_weights(seq, corpus, use_idf=True):
    if not use_idf or len(corpus) == 1:
        return np.ones(len(seq))
    idf, unseen, eos_value = np_idf(corpus)
    w = np.array([eos_value if t == EOS else idf.get(t, unseen) for t in seq])
    return w if w.sum() > 0 else np.ones(len(seq))


def np_figr(cand, w, targets, v=None):
    """cand (L, D) real tokens only, targets (T, D) real only."""
    sim = np.zeros((len(cand), len(targets)))
    for i in range(len(cand)):
        for j in range(len(targets)):
            sim[i, j] = float(np_unit(cand[i]) @ np_unit(targets[j]))
    w = np.asarray(w, dtype=np.float64) / np.sum(w)
    p = sum(w[i] * max(sim[i, j] for j in range(len(targets))) for i in range(len(cand)))
    if v is None:
        r = sum(max(sim[i, j] for i in range(len(cand))) for j in range(len(targets))) / len(targets)
    else:
        v = np.asarray(v, dtype=np.float64) / np.sum(v)
        r = sum(v[j] * max(sim[i, j] for i in range(len(cand))) for j in range(len(targets)))
    f = 2 * p * r / (p + r) if p + r != 0 else 0.0
    return p, r, f


def np_cos(a, b):
    return float(np_unit(a) @ np_unit(b))


def np_with_full(d):
    for m in "PRF":
        d[f"full_{m}"] = (d[f"figr_{m}"] + d["cogr"]) / 2
    return d


def np_emscore(cand, cand_w, cand_g, frames=None, refs=()):
    """One candidate. frames: (T, D) or None; refs: list of (tokens, weights, global)."""
    out = {}
    if frames is not None:
        p, r, f = np_figr(cand, cand_w, frames)
        video = np_unit(np.mean([np_unit(x) for x in frames], axis=0))
        out["EMScore(X,V)"] = np_with_full({"figr_P": p, "figr_R": r, "figr_F": f, "cogr": np_cos(cand_g, video)})
    if refs:
        per_ref = [np_figr(cand, cand_w, tok, w) + (np_cos(cand_g, g),) for tok, w, g in refs]
        best = {
            "figr_P": max(x[0] for x in per_ref),
            "figr_R": max(x[1] for x in per_ref),
            "figr_F": max(x[2] for x in per_ref),
            "cogr": max(x[3] for x in per_ref),
        }
        out["EMScore(X,X*)"] = np_with_full(best)
    if len(out) == 2:
        a, b = out["EMScore(X,V)"], out["EMScore(X,X*)"]
        out["EMScore(X,V,X*)"] = np_with_full({k: (a[k] + b[k]) / 2 for k in ("figr_P", "figr_R", "figr_F", "cogr")})
    return {f"{t}_{m}": v for t, d in out.items() for m, v in d.items()}


# --------------------------------------------------------------------------- random inputs


def pad(arrays, width=None):
    width = width or max(len(a) for a in arrays)
    dim = arrays[0].shape[1]
    out = torch.zeros((len(arrays), width, dim), dtype=torch.float32)
    mask = torch.zeros((len(arrays), width), dtype=torch.bool)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = torch.from_numpy(a)
        mask[i, : len(a)] = True
    return out, mask


def random_sequence(rng, n_words, vocab=40):
    return [SOS, *rng.integers(0, vocab, n_words).tolist(), EOS]


def random_problem(rng, dim=16, negative=False):
    """4 candidates, 3 videos (one shared), 1-3 references each, varied lengths."""
    n_words = [3, 7, 1, 5]
    cand_ids = [random_sequence(rng, n) for n in n_words]
    cand_tok = [rng.normal(size=(len(s), dim)) for s in cand_ids]
    cand_glob = [rng.normal(size=dim) for _ in cand_ids]
    n_frames = [4, 1, 6]
    frames = [rng.normal(size=(t, dim)) for t in n_frames]
    cand_video = [0, 1, 2, 0]
    ref_cand = [0, 1, 1, 2, 3, 3, 3]
    ref_ids = [random_sequence(rng, int(rng.integers(1, 8))) for _ in ref_cand]
    ref_tok = [rng.normal(size=(len(s), dim)) for s in ref_ids]
    ref_glob = [rng.normal(size=dim) for _ in ref_cand]
    if negative:
        # every candidate-token/target cosine < 0: the padded-max defect would report 0s
        u = np_unit(rng.normal(size=dim))
        cand_tok = [-u + 0.1 * rng.normal(size=x.shape) for x in cand_tok]
        frames = [u + 0.1 * rng.normal(size=x.shape) for x in frames]
        ref_tok = [u + 0.1 * rng.normal(size=x.shape) for x in ref_tok]
    return dict(
        cand_ids=cand_ids, cand_tok=cand_tok, cand_glob=cand_glob, frames=frames, cand_video=cand_video,
        ref_cand=ref_cand, ref_ids=ref_ids, ref_tok=ref_tok, ref_glob=ref_glob,
    )


def run_both(pb, use_idf, with_frames=True, with_refs=True):
    corpus = pb["ref_ids"] if with_refs else pb["cand_ids"]
    cand_tokens, cand_mask = pad(pb["cand_tok"], width=77)
    cand_w = idf_weights(pb["cand_ids"], corpus, idf=use_idf, length=77).weights
    kwargs = {}
    if with_frames:
        frames, frame_mask = pad(pb["frames"])
        kwargs.update(frames=frames, frame_mask=frame_mask, cand_video=torch.tensor(pb["cand_video"]))
    if with_refs:
        ref_tokens, ref_mask = pad(pb["ref_tok"])
        kwargs.update(
            ref_tokens=ref_tokens, ref_mask=ref_mask,
            ref_global=torch.tensor(np.stack(pb["ref_glob"]), dtype=torch.float32),
            ref_weights=idf_weights(pb["ref_ids"], corpus, idf=use_idf).weights,
            ref_cand=torch.tensor(pb["ref_cand"]),
        )  # fmt: skip
    cand_global = torch.tensor(np.stack(pb["cand_glob"]), dtype=torch.float32)
    ours = emscore(cand_tokens, cand_mask, cand_global, cand_w, **kwargs)

    f32 = lambda a: np.asarray(a, dtype=np.float32).astype(np.float64)  # the inputs ours saw  # noqa: E731
    expected = []
    for b, ids in enumerate(pb["cand_ids"]):
        refs = [
            (f32(pb["ref_tok"][k]), np_weights(pb["ref_ids"][k], corpus, use_idf), f32(pb["ref_glob"][k]))
            for k, owner in enumerate(pb["ref_cand"])
            if owner == b
        ]
        expected.append(np_emscore(
            f32(pb["cand_tok"][b]), np_weights(ids, corpus, use_idf), f32(pb["cand_glob"][b]),
            frames=f32(pb["frames"][pb["cand_video"][b]]) if with_frames else None,
            refs=refs if with_refs else (),
        ))  # fmt: skip
    return ours, expected


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("negative", [False, True])
@pytest.mark.parametrize("use_idf", [True, False])
def test_emscore_matches_independent_implementation(negative, use_idf):
    pb = random_problem(np.random.default_rng(7 + negative), negative=negative)
    ours, expected = run_both(pb, use_idf)
    assert set(ours) == {f"{t}_{m}" for t in SCORE_TYPES for m in METRICS}
    for key, values in ours.items():
        assert values.dtype == torch.float64 and values.shape == (4,)
        np.testing.assert_allclose(values.numpy(), [e[key] for e in expected], rtol=0, atol=TOL, err_msg=key)
    if negative:
        # real maxima are negative; a zero-padded max would have given exactly 0
        assert (ours["EMScore(X,V)_figr_P"] < -0.5).all() and (ours["EMScore(X,X*)_figr_R"] < -0.5).all()


@pytest.mark.parametrize("with_frames, with_refs", [(True, False), (False, True)])
def test_emscore_with_only_video_or_only_references(with_frames, with_refs):
    pb = random_problem(np.random.default_rng(11))
    ours, expected = run_both(pb, True, with_frames=with_frames, with_refs=with_refs)
    wanted = "EMScore(X,V)" if with_frames else "EMScore(X,X*)"
    assert all(k.startswith(wanted + "_") for k in ours) and len(ours) == len(METRICS)
    for key, values in ours.items():
        np.testing.assert_allclose(values.numpy(), [e[key] for e in expected], rtol=0, atol=TOL, err_msg=key)


def test_several_references_take_the_elementwise_max():
    rng = np.random.default_rng(3)
    cand = torch.tensor(rng.normal(size=(1, 5, 8)))
    refs = torch.tensor(rng.normal(size=(3, 4, 8)))
    glob, ref_glob = torch.tensor(rng.normal(size=(1, 8))), torch.tensor(rng.normal(size=(3, 8)))
    mask, ref_mask = torch.ones(1, 5, dtype=torch.bool), torch.ones(3, 4, dtype=torch.bool)
    together = emscore(cand, mask, glob, ref_tokens=refs, ref_mask=ref_mask, ref_global=ref_glob,
                       ref_cand=torch.zeros(3, dtype=torch.long))
    singles = [emscore(cand, mask, glob, ref_tokens=refs[k : k + 1], ref_mask=ref_mask[k : k + 1],
                       ref_global=ref_glob[k : k + 1]) for k in range(3)]  # fmt: skip
    for metric in ("figr_P", "figr_R", "figr_F", "cogr"):
        key = f"EMScore(X,X*)_{metric}"
        assert together[key].item() == max(s[key].item() for s in singles)

    # P, R and F maxima may come from different references: not one "best reference" row.
    e = torch.eye(3, dtype=torch.float64)
    cand = e[None, :2]  # tokens e1, e2
    refs = torch.stack([torch.stack([e[0], e[0], e[0]]), e])  # ref A = [e1] (padded), ref B = [e1, e2, e3]
    ref_mask = torch.tensor([[1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    out = emscore(cand, torch.ones(1, 2, dtype=torch.bool), e[None, 0], ref_tokens=refs, ref_mask=ref_mask,
                  ref_global=e[:2], ref_cand=torch.zeros(2, dtype=torch.long))  # fmt: skip
    # A: P = (1 + 0)/2, R = 1; B: P = 1, R = (1 + 1 + 0)/3, F = 0.8
    assert out["EMScore(X,X*)_figr_P"].item() == pytest.approx(1.0)
    assert out["EMScore(X,X*)_figr_R"].item() == pytest.approx(1.0)
    assert out["EMScore(X,X*)_figr_F"].item() == pytest.approx(0.8)


def test_idf_formula_by_hand():
    corpus = [[SOS, 1, 2, EOS], [SOS, 1, 3, EOS]]
    # M = 2: SOS, 1, EOS in both docs -> log(3/3) = 0; 2 and 3 in one -> log(3/2)
    eos = (0 + 0 + math.log(1.5) + math.log(1.5) + 0) / 5
    table = idf_table(corpus)
    assert table.eos_idf == pytest.approx(eos, abs=1e-15) and table.unseen == pytest.approx(math.log(3))
    out = idf_weights([[SOS, 2, 4, EOS], [SOS, 1, EOS]], corpus, length=6)
    np.testing.assert_allclose(out.weights[0].numpy(), [0, math.log(1.5), math.log(3), eos, 0, 0], atol=1e-15)
    assert out.uniform_fallback.tolist() == [False, False]
    assert out.weights.dtype == torch.float64 and out.weights.shape == (2, 6)
    # SOS and "1" are in every document (idf 0); only EOS weighs
    np.testing.assert_allclose(out.weights[1].numpy(), [0, 0, eos, 0, 0, 0], atol=1e-15)
    # precomputed table gives the same weights
    assert torch.equal(idf_weights([[SOS, 2, 4, EOS]], table).weights, out.weights[:1, :4])


def test_idf_off_and_single_document_fallback():
    seqs = [[SOS, 5, 6, EOS], [SOS, 7, EOS]]
    off = idf_weights(seqs, None, idf=False)
    np.testing.assert_array_equal(off.weights.numpy(), [[1, 1, 1, 1], [1, 1, 1, 0]])
    assert not off.uniform_fallback.any()

    single = idf_weights(seqs, [[SOS, 5, 9, EOS]])
    np.testing.assert_array_equal(single.weights.numpy(), [[1, 1, 1, 1], [1, 1, 1, 0]])
    assert single.uniform_fallback.all()
    # copies of one caption: every idf is 0 -> fallback, never NaN downstream
    copies = idf_weights([[SOS, 5, EOS]], [[SOS, 5, EOS]] * 3)
    assert copies.uniform_fallback.all() and torch.isfinite(copies.weights).all()

    rng = np.random.default_rng(5)
    cand, frames = torch.tensor(rng.normal(size=(2, 4, 8))), torch.tensor(rng.normal(size=(2, 3, 8)))
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    scores = emscore(cand, mask, torch.tensor(rng.normal(size=(2, 8))), single.weights, frames=frames)
    assert all(torch.isfinite(v).all() for v in scores.values())
    # uniform weights equal idf=False
    same = emscore(cand, mask, torch.tensor(rng.normal(size=(2, 8))), None, frames=frames)
    assert torch.equal(scores["EMScore(X,V)_figr_P"], same["EMScore(X,V)_figr_P"])


def test_frame_details_score_each_frame_as_a_one_frame_video():
    pb = random_problem(np.random.default_rng(9))
    corpus = pb["ref_ids"]
    cand_tokens, cand_mask = pad(pb["cand_tok"])
    cand_w = idf_weights(pb["cand_ids"], corpus, length=cand_tokens.shape[1]).weights
    cand_global = torch.tensor(np.stack(pb["cand_glob"]), dtype=torch.float32)
    frames, frame_mask = pad(pb["frames"])
    video = torch.tensor(pb["cand_video"])
    ref_tokens, ref_mask = pad(pb["ref_tok"])
    ref_kw = dict(ref_tokens=ref_tokens, ref_mask=ref_mask, ref_cand=torch.tensor(pb["ref_cand"]),
                  ref_global=torch.tensor(np.stack(pb["ref_glob"]), dtype=torch.float32),
                  ref_weights=idf_weights(pb["ref_ids"], corpus).weights)  # fmt: skip
    scores = emscore(cand_tokens, cand_mask, cand_global, cand_w, **ref_kw)
    details = frame_details(cand_tokens, cand_mask, cand_global, cand_w, frames, frame_mask, video, scores)
    assert details["EMScore(X,V)_figr_P"].shape == (4, 6)

    f32 = lambda a: np.asarray(a, dtype=np.float32).astype(np.float64)  # noqa: E731
    for b in range(4):
        real = pb["frames"][pb["cand_video"][b]]
        w = np_weights(pb["cand_ids"][b], corpus)
        for j in range(6):
            if j >= len(real):
                assert torch.isnan(details["EMScore(X,V)_figr_P"][b, j])
                continue
            one = np_emscore(f32(pb["cand_tok"][b]), w, f32(pb["cand_glob"][b]), frames=f32(real[j : j + 1]))
            for key, value in one.items():
                assert details[key][b, j].item() == pytest.approx(value, abs=TOL), key
            xvx = details["EMScore(X,V,X*)_figr_F"][b, j].item()
            assert xvx == pytest.approx((one["EMScore(X,V)_figr_F"] + scores["EMScore(X,X*)_figr_F"][b].item()) / 2)

    records = frame_detail_records(details, 1, [0, 30], [0.0, 1.0])  # candidate 1's video has 1 frame
    assert records[0]["frame_index"] == 0 and records[0]["timestamp"] == 0.0
    assert set(records[0]) == {"frame_index", "timestamp", "EMScore(X,V)", "EMScore(X,V,X*)"}
    assert set(records[0]["EMScore(X,V)"]) == set(METRICS)
    assert records[0]["EMScore(X,V)"]["cogr"] == details["EMScore(X,V)_cogr"][1, 0].item()


def test_end_to_end_through_a_tiny_clip(tmp_path):
    clip = load_clip(str(write_tiny_clip_config(tmp_path)), None)
    rng = np.random.default_rng(0)
    videos = [rng.integers(0, 256, (n, 48, 80, 3), dtype=np.uint8) for n in (3, 5)]
    frame_embs = [encode_images(clip, v, batch_size=2) for v in videos]
    cands = ["a man rides a horse", "two cats sleep on a sofa", "a man rides a horse"]
    refs = ["a man is riding a brown horse", "a person on horseback", "cats sleeping", "a man rides a horse"]
    ref_cand = [0, 0, 1, 2]  # candidate 2 is its own reference
    cand_video = [0, 1, 1]

    cand = encode_text_tokens(clip, cands)
    ref = encode_text_tokens(clip, refs)
    corpus = idf_table(token_id_lists(ref.token_ids, ref.mask))
    cand_w = idf_weights(token_id_lists(cand.token_ids, cand.mask), corpus, length=77).weights
    ref_w = idf_weights(token_id_lists(ref.token_ids, ref.mask), corpus, length=77).weights
    frames, frame_mask = pad([e.numpy() for e in frame_embs])
    scores = emscore(
        cand.token_embeddings, cand.mask, cand.global_embeddings, cand_w,
        frames=frames, frame_mask=frame_mask, cand_video=torch.tensor(cand_video),
        ref_tokens=ref.token_embeddings, ref_mask=ref.mask, ref_global=ref.global_embeddings,
        ref_weights=ref_w, ref_cand=torch.tensor(ref_cand),
    )  # fmt: skip

    ref_lists = token_id_lists(ref.token_ids, ref.mask)
    for b in range(3):
        n = int(cand.mask[b].sum())
        ids = cand.token_ids[b, :n].tolist()
        expected = np_emscore(
            cand.token_embeddings[b, :n].double().numpy(),
            np_weights(ids, ref_lists),
            cand.global_embeddings[b].double().numpy(),
            frames=frame_embs[cand_video[b]].double().numpy(),
            refs=[
                (ref.token_embeddings[k, : int(ref.mask[k].sum())].double().numpy(), np_weights(ref_lists[k], ref_lists),
                 ref.global_embeddings[k].double().numpy())
                for k in range(4) if ref_cand[k] == b
            ],
        )  # fmt: skip
        for key, value in expected.items():
            assert scores[key][b].item() == pytest.approx(value, abs=1e-9), (b, key)

    # a caption scored against itself matches perfectly
    for metric in ("figr_P", "figr_R", "figr_F", "cogr", "full_F"):
        assert scores[f"EMScore(X,X*)_{metric}"][2].item() == pytest.approx(1.0, abs=1e-6)
    assert scores["EMScore(X,X*)_figr_F"][0] < 1.0
