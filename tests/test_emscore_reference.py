"""EMScore through the pipeline against the reference code's algorithm, re-written here.

The reference is ShiYaya/emscore: ``EMScorer.score`` (scorer.py) and ``get_idf_dict``,
``encode_text``, ``encode_video``, ``refs_greedy_cos``, ``vid_greedy_cos`` and
``em_cos_score`` (utils.py). This file re-implements that algorithm in float64 numpy from
reading it, sharing nothing with ``vidqa.metrics.emscore``:

- candidates with a list of references are flattened to (candidate, reference) pairs; the
  idf documents are those references (else the candidates), each the padded 77-token row
  turned into a set, and EOS gets the mean over every entry, the padding token's 0 included;
- text token features are the final states after ``ln_final`` projected by
  ``text_projection``, SOS to EOS inclusive, each L2-normalised; the global one is EOS's;
- every frame of the video goes through open_clip's own PIL preprocessing and
  ``encode_image``; the video's global feature is the normalised mean of the normalised
  frame features;
- greedy matching runs on batches padded with zeros and masked by multiplication, as the
  reference does (``zero_pad``), or with maxima over real positions only (``real``, what vidqa does
  on purpose: REFERENCE.md section 1);
- several references: element-wise max of (P, R, F) and max of cogr over the group.

Frames are what ffmpeg shows (rotation and non-square pixels applied), decoded here by an
ffmpeg process of this test's own, because vidqa decodes frames as displayed on purpose (the
reference's cv2 reads stored pixels). The five cases of the fidelity issue run through the
real shard path (Postgres, ffmpeg, a tiny random CLIP from the real ViT-B-32 config) with
``sampling: all``, and every stored EMScore value is compared at 1e-5.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections import Counter, defaultdict

import numpy as np
import open_clip
import pytest
import sqlalchemy as sa
import torch
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image

from conftest import VIDEOS, run_shard
from vidqa.db import get_engine
from vidqa.models.clip_model import load_clip
from vidqa.scoring.job import ScorerSpec
from vidqa.scoring.shard import prepare_scorers
from vidqa.storage import Storage

TOL = 1e-5
BFYP = str(VIDEOS / "Bfyp0C02sko_000248_000258.mp4")
COUNTER = str(VIDEOS / "counter.mp4")
FADES = str(VIDEOS / "fades.mp4")
ROTATED = str(VIDEOS / "issue-134-rotate.mp4")
ROTATED_SHORT = str(VIDEOS / "video_90.mov")
CANDIDATE = "A person is frying a pan of eggs that are colored pink and green."
REFERENCE = "Two egg yolks are placed in food flavored white yolk on a pan until they are cooked."
EGG_REFS = [REFERENCE, "someone cooks eggs in a frying pan"]


# --------------------------------------------------------------------------- the reference algorithm


def idf_dict(documents: list[str]) -> defaultdict:
    """get_idf_dict over clip.tokenize rows, then idf[max key] = mean(values) (EOS)."""
    count: Counter[int] = Counter()
    for doc in documents:
        count.update(set(open_clip.tokenize([doc])[0].tolist()))
    m = len(documents)
    idf = defaultdict(lambda: math.log((m + 1) / 1))
    idf.update({t: math.log((m + 1) / (c + 1)) for t, c in count.items()})
    idf[max(idf)] = sum(idf.values()) / len(idf)
    return idf


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def text_features(model, sentences: list[str], idf) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """encode_text with local=True: per sentence (token features SOS..EOS, their idf, EOS feature)."""
    ids = open_clip.tokenize(sentences)
    with torch.no_grad():
        x = model.token_embedding(ids) + model.positional_embedding
        x = model.transformer(x, attn_mask=model.attn_mask)
        x = model.ln_final(x) @ model.text_projection
        assert torch.allclose(x[torch.arange(len(ids)), ids.argmax(dim=-1)], model.encode_text(ids), atol=1e-5)
    x = unit(x.float().numpy())
    out = {}
    for i, sentence in enumerate(sentences):
        n = int(ids[i].argmax()) + 1  # through EOS, the largest id
        out[sentence] = (x[i, :n], np.array([idf[int(t)] for t in ids[i, :n]], dtype=np.float64), x[i, n - 1])
    return out


def displayed_frames(path: str) -> np.ndarray:
    """Every frame as displayed: ffmpeg's autorotation, then square pixels."""
    info = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_streams", "-of", "json", path],
        capture_output=True, check=True).stdout)["streams"][0]  # fmt: skip
    w, h = info["width"], info["height"]
    num, den = map(int, (info.get("sample_aspect_ratio") or "1:1").replace("0:1", "1:1").split(":"))
    w = round(w * num / den)
    rotation = next((int(d.get("rotation", 0)) for d in info.get("side_data_list", []) if "rotation" in d), 0)
    if rotation % 180:
        w, h = h, w
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", "0:v:0", "-vf", f"scale={w}:{h}:flags=bicubic,setsar=1",
         "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"],
        capture_output=True, check=True).stdout  # fmt: skip
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, h, w, 3)


def video_features(model, path: str) -> tuple[np.ndarray, np.ndarray]:
    """encode_video: all frames through the PIL preprocessing, normalised; global = unit(mean)."""
    preprocess = image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)
    frames = displayed_frames(path)
    with torch.no_grad():
        pixels = torch.stack([preprocess(Image.fromarray(f).convert("RGB")) for f in frames])
        feats = torch.cat([model.encode_image(pixels[i : i + 512]).float() for i in range(0, len(pixels), 512)])
    feats = unit(feats.numpy())
    return feats, unit(feats.mean(axis=0))


def pad(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """pad_sequence(padding_value=0) and its length mask."""
    width = max(len(r) for r in rows)
    out = np.zeros((len(rows), width) + rows[0].shape[1:], dtype=np.float64)
    mask = np.zeros((len(rows), width), dtype=np.float64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
        mask[i, : len(r)] = 1.0
    return out, mask


def greedy_cos(hyp, hyp_mask, hyp_idf, target, target_mask, target_idf, maxima: str):
    """refs_greedy_cos (target_idf given) / vid_greedy_cos (target_idf None) on one padded batch.

    maxima: ``zero_pad`` as the reference (the similarity is multiplied by the mask, so a
    padded 0 takes part in every max), ``real`` (real positions only, what vidqa does), or
    ``explained`` (real maxima raised to 0 in rows that the batch pads: what ``zero_pad``
    must equal if the padded zero is the only difference)."""
    masks = hyp_mask[:, :, None] * target_mask[:, None, :]
    sim = np.einsum("bid,bjd->bij", hyp, target)
    if maxima == "zero_pad":
        sim = sim * masks
    else:
        sim = np.where(masks > 0, sim, -np.inf)
    best_token, best_target = sim.max(axis=2), sim.max(axis=1)
    if maxima == "explained":
        best_token = np.where(target_mask.min(axis=1, keepdims=True) == 0, np.maximum(best_token, 0), best_token)
        best_target = np.where(hyp_mask.min(axis=1, keepdims=True) == 0, np.maximum(best_target, 0), best_target)
    word_precision = np.where(hyp_mask > 0, best_token, 0.0)
    word_recall = np.where(target_mask > 0, best_target, 0.0)
    p = (word_precision * hyp_idf / hyp_idf.sum(axis=1, keepdims=True)).sum(axis=1)
    if target_idf is None:
        r = word_recall.sum(axis=1) / target_mask.sum(axis=1)
    else:
        r = (word_recall * target_idf / target_idf.sum(axis=1, keepdims=True)).sum(axis=1)
    with np.errstate(invalid="ignore"):  # P + R = 0 happens with zero-padded maxima: NaN, as the reference
        return p, r, 2 * p * r / (p + r)


def with_full(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    for m in "PRF":
        d[f"full_{m}"] = (d[f"figr_{m}"] + d["cogr"]) / 2
    return d


def reference_emscore(model, cands, refs, vids, *, maxima="zero_pad", batch_size=64, video_cache=None) -> dict[str, np.ndarray]:
    """EMScorer.score(cands, refs, vids, idf=True): {"EMScore(X,V)_figr_P": (N,), ...}.
    ``video_cache`` plays the reference's ``vid_feat_cache``: frame features computed once."""
    groups = None
    if refs and not isinstance(refs[0], str):
        flat_cands, flat_refs, groups = [], [], []
        for cand, group in zip(cands, refs):
            groups.append((len(flat_refs), len(flat_refs) + len(group)))
            flat_cands += [cand] * len(group)
            flat_refs += group
    else:
        flat_cands, flat_refs = cands, refs
    idf = idf_dict(flat_refs if flat_refs else flat_cands)
    text = text_features(model, sorted(set(flat_refs + flat_cands)), idf)
    results: dict[str, dict[str, np.ndarray]] = {}

    def batches(n):
        return [slice(s, s + batch_size) for s in range(0, n, batch_size)]

    if flat_refs:
        prf, cogr = [], []
        for b in batches(len(flat_cands)):
            hyp, hyp_mask = pad([text[c][0] for c in flat_cands[b]])
            hyp_idf, _ = pad([text[c][1] for c in flat_cands[b]])
            ref, ref_mask = pad([text[r][0] for r in flat_refs[b]])
            ref_idf, _ = pad([text[r][1] for r in flat_refs[b]])
            prf.append(np.stack(greedy_cos(hyp, hyp_mask, hyp_idf, ref, ref_mask, ref_idf, maxima), axis=-1))
            cogr.append(np.array([text[c][2] @ text[r][2] for c, r in zip(flat_cands[b], flat_refs[b])]))
        prf, cogr = np.concatenate(prf), np.concatenate(cogr)
        if groups is not None:
            prf = np.stack([prf[s:e].max(axis=0) for s, e in groups])
            cogr = np.array([cogr[s:e].max() for s, e in groups])
        results["EMScore(X,X*)"] = with_full({"figr_P": prf[:, 0], "figr_R": prf[:, 1], "figr_F": prf[:, 2], "cogr": cogr})

    if vids:
        cache = {} if video_cache is None else video_cache
        feats = {v: cache[v] if v in cache else cache.setdefault(v, video_features(model, v)) for v in dict.fromkeys(vids)}
        prf, cogr = [], []
        for b in batches(len(cands)):
            hyp, hyp_mask = pad([text[c][0] for c in cands[b]])
            hyp_idf, _ = pad([text[c][1] for c in cands[b]])
            frames, frame_mask = pad([feats[v][0] for v in vids[b]])
            prf.append(np.stack(greedy_cos(hyp, hyp_mask, hyp_idf, frames, frame_mask, None, maxima), axis=-1))
            cogr.append(np.array([text[c][2] @ feats[v][1] for c, v in zip(cands[b], vids[b])]))
        prf, cogr = np.concatenate(prf), np.concatenate(cogr)
        results["EMScore(X,V)"] = with_full({"figr_P": prf[:, 0], "figr_R": prf[:, 1], "figr_F": prf[:, 2], "cogr": cogr})

    if len(results) == 2:
        v, r = results["EMScore(X,V)"], results["EMScore(X,X*)"]
        results["EMScore(X,V,X*)"] = with_full({k: (v[k] + r[k]) / 2 for k in ("figr_P", "figr_R", "figr_F", "cogr")})
    return {f"{t}_{m}": values for t, d in results.items() for m, values in d.items()}


# --------------------------------------------------------------------------- the pipeline


def sar_video(path) -> str:
    """A 2 s 320x240 video with 2:1 pixels: displayed 640x240."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10:duration=2",
         "-vf", "setsar=2", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)],
        check=True)  # fmt: skip
    return str(path)


def pipeline_scores(rows, tiny_clip, tmp_path, database_url) -> tuple[list[dict[str, float]], list[int]]:
    """Score manifest rows through the shard path; the stored EMScore values and the number
    of frames they were computed from, per row."""
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    refs = Storage().list_videos(str(manifest))
    spec = {"clip": {"model": tiny_clip[32], "pretrained": None}, "sampling": {"method": "all"}}
    (prepared,) = prepare_scorers([ScorerSpec("emscore", spec)], refs)
    engine = get_engine(database_url)
    result = run_shard(engine, refs, [prepared], None)
    assert [o.status for o in result.outcomes] == ["scored"] * len(rows), [o.reason for o in result.outcomes]
    with engine.connect() as conn:
        stored = conn.execute(sa.text("""
            SELECT v.uri, i.inputs, s.metric, s.value, s.details FROM scores s
            JOIN clips c ON c.id = s.clip_id JOIN videos v ON v.id = c.video_id
            JOIN score_inputs i ON i.input_hash = s.input_hash
            WHERE s.scorer = 'emscore' AND s.config_hash = :hash"""), {"hash": prepared.config_hash}).all()
    by_row: list[dict[str, float]] = [{} for _ in rows]
    frames = [0] * len(rows)
    for uri, inputs, metric, value, details in stored:
        (n,) = [n for n, r in enumerate(rows) if r["video_path"] == uri and r["candidate"] == inputs["candidate"]]
        by_row[n][metric] = value
        assert details["frames"] == details["requested"] and not details["capped"]
        frames[n] = details["frames"]
    return by_row, frames


CASES = {
    "no references": [
        {"video_path": BFYP, "candidate": CANDIDATE},
        {"video_path": COUNTER, "candidate": "numbers counting up on a black screen"},
        {"video_path": FADES, "candidate": "a picture fades to black and back"},
    ],
    "one reference": [
        {"video_path": BFYP, "candidate": CANDIDATE, "reference": REFERENCE},
        {"video_path": COUNTER, "candidate": "numbers counting up", "reference": "a counter on a screen"},
        {"video_path": FADES, "candidate": "a picture fades to black", "reference": "the screen goes dark"},
    ],
    "two references": [
        {"video_path": BFYP, "candidate": CANDIDATE, "reference": EGG_REFS},
        {"video_path": COUNTER, "candidate": "numbers counting up", "reference": ["a counter", "digits on a screen"]},
    ],
    "candidates sharing references": [  # VATEX-EVAL: several candidates of one video, its references each time
        {"video_path": BFYP, "candidate": CANDIDATE, "reference": EGG_REFS},
        {"video_path": BFYP, "candidate": "a man cooks breakfast", "reference": EGG_REFS},
        {"video_path": BFYP, "candidate": "eggs", "reference": EGG_REFS},
        {"video_path": COUNTER, "candidate": "numbers counting up", "reference": ["a counter", "digits on a screen"]},
    ],
    "rotated and non-square pixels": [
        {"video_path": ROTATED, "candidate": "two people talk in a room", "reference": ["a man and a woman talk"]},
        {"video_path": ROTATED_SHORT, "candidate": "a short clip filmed sideways", "reference": ["a phone video"]},
        {"video_path": "SAR", "candidate": "a test pattern with a clock", "reference": ["colour bars and a timer"]},
    ],
}


def reference_inputs(rows):
    cands = [r["candidate"] for r in rows]
    vids = [r["video_path"] for r in rows]
    refs = [r["reference"] for r in rows if "reference" in r]
    assert len(refs) in (0, len(rows))
    return cands, refs, vids


@pytest.mark.parametrize("case", list(CASES))
def test_stored_emscore_equals_the_reference_algorithm(case, tiny_clip, tmp_path, migrated_db):
    rows = [dict(r) for r in CASES[case]]
    for r in rows:
        if r["video_path"] == "SAR":
            r["video_path"] = sar_video(tmp_path / "sar.mp4")
    stored, n_frames = pipeline_scores(rows, tiny_clip, tmp_path, migrated_db)
    model = load_clip(tiny_clip[32], None).model
    video_cache: dict = {}
    real_max = reference_emscore(model, *reference_inputs(rows), maxima="real", video_cache=video_cache)
    has_refs = "reference" in rows[0]
    assert n_frames == [len(video_cache[r["video_path"]][0]) for r in rows]  # every frame, as the reference
    expected_keys = {k for k in real_max if has_refs or k.startswith("EMScore(X,V)_")}
    assert len(expected_keys) == (21 if has_refs else 7)
    worst = 0.0
    for n, row_scores in enumerate(stored):
        assert set(row_scores) == expected_keys, n
        for key in expected_keys:
            assert row_scores[key] == pytest.approx(float(real_max[key][n]), abs=TOL), (n, key)
            worst = max(worst, abs(row_scores[key] - float(real_max[key][n])))
    print(f"{case}: max |vidqa - reference algorithm| = {worst:.2e}")

    # The reference's own zero-padded maxima differ from these only where a padded zero beat
    # every real cosine of a token or frame, i.e. where that real maximum is negative.
    zero_pad = reference_emscore(model, *reference_inputs(rows), maxima="zero_pad", video_cache=video_cache)
    explained = reference_emscore(model, *reference_inputs(rows), maxima="explained", video_cache=video_cache)
    deviation = 0.0
    for key in expected_keys:
        np.testing.assert_allclose(zero_pad[key], explained[key], rtol=0, atol=1e-12, err_msg=key)
        deviation = max(deviation, float(np.abs(zero_pad[key] - real_max[key]).max()))
    print(f"{case}: max |zero-padded reference - real-position maxima| = {deviation:.2e}")


def test_the_zero_pad_deviation_vanishes_when_every_cosine_is_positive():
    """vidqa's real-position maxima against the reference's zero-padded ones on one padded
    batch: equal when every cosine is positive, different when a row's cosines are all negative."""
    rng = np.random.default_rng(0)
    common = unit(rng.normal(size=16))

    def rows(lengths, sign):
        return [unit(sign * 3 * common + 0.3 * rng.normal(size=(n, 16))) for n in lengths]

    hyp, hyp_mask = pad(rows([3, 7, 5], +1))
    hyp_idf = hyp_mask * rng.uniform(0.1, 2.0, size=hyp_mask.shape)
    for sign in (+1, -1):
        target, target_mask = pad(rows([6, 2, 4], sign))
        target_idf = target_mask * rng.uniform(0.1, 2.0, size=target_mask.shape)
        sim = np.einsum("bid,bjd->bij", hyp, target)[(hyp_mask[:, :, None] * target_mask[:, None, :]) > 0]
        assert (sim > 0).all() if sign > 0 else (sim < 0).all()
        for idf in (target_idf, None):
            zero = greedy_cos(hyp, hyp_mask, hyp_idf, target, target_mask, idf, "zero_pad")
            real = greedy_cos(hyp, hyp_mask, hyp_idf, target, target_mask, idf, "real")
            for z, r in zip(zero, real):
                if sign > 0:
                    np.testing.assert_allclose(z, r, rtol=0, atol=1e-15)
                else:
                    assert (r < 0).all() and (np.abs(z - r) > 0.05).any()
