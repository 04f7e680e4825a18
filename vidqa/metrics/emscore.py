"""EMScore (Shi et al., arXiv 2111.08919): a caption X scored against its video V and/or
reference captions X* by matching CLIP embeddings. Pure float64 functions over tensors.

Inputs are CLIP embeddings (see ``vidqa.models.clip_model``): for a caption, its token embeddings
from SOS to EOS inclusive and its global (EOS) embedding; for a video, one embedding per
sampled frame. Everything is batched: row ``b`` of the candidate tensors is one caption;
videos and references are matched to candidates by index tensors, so several candidates
can share a video and a candidate can have several references.

Fine-grained matching (``figr``) of candidate tokens ``x_i`` (weights ``w_i``) with targets
``y_j`` (frames, or reference tokens with weights ``v_j``), ``sim[i, j] = cos(x_i, y_j)``::

    P = sum_i w_i max_j sim[i, j]                  w = idf / sum(idf) over the candidate
    R = sum_j v_j max_i sim[i, j]                  v = idf / sum(idf) over the reference
    R = 1/T sum_j max_i sim[i, j]                  for T frames (frames carry no idf)
    F = 2 P R / (P + R)                            (0 where P + R = 0)

Maxima run over real positions only: the reference code zero-pads and multiplies by a mask,
so a padded 0 wins the max when every true cosine is negative; that is not reproduced.

Coarse-grained: ``cogr = cos(global(X), global(target))``, the target being the normalised
mean of the normalised frame embeddings (V) or the reference's EOS embedding (X*).

Combinations: ``full_m = (figr_m + cogr) / 2`` for m in P, R, F; ``EMScore(X,V,X*)``
averages each of figr_P/R/F and cogr over ``(X,V)`` and ``(X,X*)`` before forming ``full``.
With several references, P, R and F are each the maximum over references (element-wise, not
from one best reference), and cogr is the maximum cogr. Scores are raw cosines, no rescaling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, NamedTuple, Sequence

import numpy as np
import torch

SCORE_TYPES = ("EMScore(X,X*)", "EMScore(X,V)", "EMScore(X,V,X*)")
METRICS = ("figr_P", "figr_R", "figr_F", "cogr", "full_P", "full_R", "full_F")
_PRF = ("P", "R", "F")


# --------------------------------------------------------------------------- IDF


@dataclass(frozen=True)
class IdfTable:
    """Inverse document frequencies of token ids over a corpus of ``M`` documents.

    ``idf(t) = log((M + 1) / (df(t) + 1))`` for a token in ``df(t)`` documents, ``log(M + 1)``
    for a token the corpus never contains, and ``eos_idf`` -- the mean of ``idf`` over the
    corpus's distinct tokens (EOS itself included, with its value 0) -- for the EOS token.
    SOS is in every document, so its idf is 0 and it never weighs in a score.
    """

    idf: Mapping[int, float]
    unseen: float
    eos_id: int
    eos_idf: float
    num_documents: int

    @property
    def degenerate(self) -> bool:
        """A single document: every token in it has idf 0, so idf weighting is meaningless."""
        return self.num_documents < 2

    def lookup(self, token_ids: Sequence[int]) -> np.ndarray:
        return np.array(
            [self.eos_idf if t == self.eos_id else self.idf.get(t, self.unseen) for t in map(int, token_ids)],
            dtype=np.float64,
        )


def idf_table(corpus: Sequence[Sequence[int]], *, pad: tuple[int, int] | None = None) -> IdfTable:
    """IDF over ``corpus``: token-id sequences running from SOS to EOS inclusive.

    The corpus is the whole set of documents being scored (the references when there are
    any, else the candidates). ``pad = (pad_id, context_length)`` counts each document as
    the reference code does (ShiYaya/emscore ``get_idf_dict`` over ``clip.tokenize``, rows
    padded to the context length): a document shorter than ``context_length`` also holds
    ``pad_id``, which is then in every such document (idf about 0) and one of the values
    EOS's mean is taken over. ``pad=None`` counts real tokens only.
    """
    documents = [[int(t) for t in doc] for doc in corpus]
    if not documents or any(len(doc) == 0 for doc in documents):
        raise ValueError("idf needs a non-empty corpus of non-empty token sequences")
    eos_ids = {doc[-1] for doc in documents}
    if len(eos_ids) != 1:
        raise ValueError(f"corpus sequences must all end with the same EOS id, found {sorted(eos_ids)}")
    if pad is not None:
        pad_id, length = pad
        documents = [doc + [pad_id] if len(doc) < length else doc for doc in documents]
    m = len(documents)
    df: dict[int, int] = {}
    for doc in documents:
        for t in set(doc):
            df[t] = df.get(t, 0) + 1
    idf = {t: math.log((m + 1) / (n + 1)) for t, n in df.items()}
    return IdfTable(
        idf=idf,
        unseen=math.log(m + 1),
        eos_id=eos_ids.pop(),
        eos_idf=math.fsum(idf.values()) / len(idf),
        num_documents=m,
    )


class IdfWeights(NamedTuple):
    """weights: ``(B, L)`` float64, zero past each sequence's end.
    uniform_fallback: ``(B,)`` bool, True where idf was requested but uniform weights were used
    (single-document corpus, or a sequence whose idf weights are all zero)."""

    weights: torch.Tensor
    uniform_fallback: torch.Tensor


def idf_weights(
    token_id_lists: Sequence[Sequence[int]],
    corpus: Sequence[Sequence[int]] | IdfTable | None,
    *,
    idf: bool = True,
    length: int | None = None,
) -> IdfWeights:
    """Per-token weights for sequences (SOS..EOS), padded to ``length`` (default: longest).

    ``idf=False``: every weight is 1. Otherwise weights come from ``corpus`` (documents or a
    precomputed :func:`idf_table`). A single-document corpus gives all-zero idf (every token
    has ``df = M``), which would make P a 0/0; such sequences get uniform weights and are
    flagged in ``uniform_fallback``, as is any sequence whose idf weights are all zero (e.g.
    a corpus of identical captions).
    """
    sequences = [[int(t) for t in seq] for seq in token_id_lists]
    width = max((len(s) for s in sequences), default=0) if length is None else length
    if any(len(s) > width for s in sequences):
        raise ValueError(f"a sequence is longer than length={width}")
    weights = torch.zeros((len(sequences), width), dtype=torch.float64)
    fallback = torch.zeros(len(sequences), dtype=torch.bool)
    table = None
    if idf:
        if corpus is None:
            raise ValueError("idf=True needs a corpus (or an IdfTable)")
        table = corpus if isinstance(corpus, IdfTable) else idf_table(corpus)
    for row, seq in enumerate(sequences):
        values = np.ones(len(seq)) if table is None else table.lookup(seq)
        if table is not None and (table.degenerate or not values.sum() > 0.0):
            values = np.ones(len(seq))
            fallback[row] = True
        weights[row, : len(seq)] = torch.from_numpy(values)
    return IdfWeights(weights, fallback)


def token_id_lists(token_ids: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
    """``(B, C)`` token ids and their SOS..EOS mask -> one id list per row, for :func:`idf_table`."""
    return [ids[m].tolist() for ids, m in zip(token_ids, mask.bool())]


# --------------------------------------------------------------------------- building blocks


def _unit(x: torch.Tensor) -> torch.Tensor:
    x = x.to(torch.float64)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _as_mask(mask: torch.Tensor | None, shape: tuple[int, ...], device) -> torch.Tensor:
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    mask = mask.to(device=device, dtype=torch.bool)
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match {tuple(shape)}")
    if not mask.any(dim=-1).all():
        raise ValueError("every row needs at least one real position")
    return mask


def _normalised_weights(weights: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
    w = mask.to(torch.float64) if weights is None else weights.to(torch.float64) * mask
    total = w.sum(dim=-1, keepdim=True)
    if not (total > 0).all():
        raise ValueError("weights sum to zero on some row; idf_weights() falls back to uniform weights")
    return w / total


def f_measure(precision: torch.Tensor, recall: torch.Tensor) -> torch.Tensor:
    """``F = 2 P R / (P + R)``, 0 where ``P + R = 0`` (as BERTScore)."""
    denominator = precision + recall
    f = 2 * precision * recall / torch.where(denominator == 0, torch.ones_like(denominator), denominator)
    return torch.where(denominator == 0, torch.zeros_like(f), f)


def video_embedding(frame_embeddings: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Global video embedding ``normalize(mean_j normalize(f_j))`` over real frames: ``(B, D)``.

    ``frame_embeddings`` is ``(B, T, D)`` (or ``(T, D)`` for one video)."""
    if frame_embeddings.ndim == 2:
        frame_embeddings = frame_embeddings[None]
        frame_mask = None if frame_mask is None else frame_mask[None]
    frames = _unit(frame_embeddings)
    mask = _as_mask(frame_mask, frames.shape[:2], frames.device).to(torch.float64)
    mean = (frames * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True)
    return _unit(mean)


def cogr(text_global: torch.Tensor, target_global: torch.Tensor) -> torch.Tensor:
    """Coarse-grained score ``cos(t_b, g_b)`` per row: ``(B, D), (B, D) -> (B,)`` float64."""
    return (_unit(text_global) * _unit(target_global)).sum(dim=-1)


def figr(
    cand_tokens: torch.Tensor,
    cand_weights: torch.Tensor | None,
    cand_mask: torch.Tensor | None,
    target_embs: torch.Tensor,
    target_weights: torch.Tensor | None,
    target_mask: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fine-grained precision, recall and F per row, each ``(B,)`` float64.

    Args:
        cand_tokens: ``(B, L, D)`` candidate token embeddings; ``cand_weights`` ``(B, L)``
            (idf; ``None`` = uniform) and ``cand_mask`` ``(B, L)`` bool (``None`` = all real).
        target_embs: ``(B, T, D)`` frames or reference tokens; ``target_weights`` ``(B, T)``
            reference idf, or ``None`` for frames (recall is then the plain mean over frames);
            ``target_mask`` ``(B, T)`` bool.

    ``P = sum_i w_i max_j sim[i, j]``, ``R = sum_j v_j max_i sim[i, j]`` (``v_j = 1/T`` for
    frames), ``F = 2PR / (P + R)``, with ``sim`` the cosine and maxima over real positions only.
    """
    sim, cand_mask, target_mask = _masked_similarity(cand_tokens, cand_mask, target_embs, target_mask)
    w = _normalised_weights(cand_weights, cand_mask)
    v = _normalised_weights(target_weights, target_mask)
    best_for_token = sim.amax(dim=2).masked_fill(~cand_mask, 0.0)
    best_for_target = sim.amax(dim=1).masked_fill(~target_mask, 0.0)
    precision = (w * best_for_token).sum(dim=1)
    recall = (v * best_for_target).sum(dim=1)
    return precision, recall, f_measure(precision, recall)


def _masked_similarity(cand_tokens, cand_mask, target_embs, target_mask):
    """``sim[b, i, j] = cos(x_bi, y_bj)``, ``-inf`` where either side is padding."""
    if cand_tokens.ndim != 3 or target_embs.ndim != 3 or cand_tokens.shape[0] != target_embs.shape[0]:
        raise ValueError(f"expected (B, L, D) and (B, T, D), got {tuple(cand_tokens.shape)}, {tuple(target_embs.shape)}")
    device = cand_tokens.device
    cand_mask = _as_mask(cand_mask, cand_tokens.shape[:2], device)
    target_mask = _as_mask(target_mask, target_embs.shape[:2], device)
    sim = torch.bmm(_unit(cand_tokens), _unit(target_embs).to(device).transpose(1, 2))
    real = cand_mask[:, :, None] & target_mask[:, None, :]
    return sim.masked_fill(~real, float("-inf")), cand_mask, target_mask


def _rows(index: torch.Tensor | None, n_rows: int, n_items: int, what: str) -> torch.Tensor:
    if index is None:
        if n_items != n_rows:
            raise ValueError(f"{n_items} {what} for {n_rows} candidates: pass an index tensor")
        return torch.arange(n_rows)
    index = torch.as_tensor(index, dtype=torch.long).cpu()
    if index.numel() and (index.min() < 0 or index.max() >= n_rows):
        raise ValueError(f"{what} index out of range")
    return index


def _full(scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for m in _PRF:
        scores[f"full_{m}"] = (scores[f"figr_{m}"] + scores["cogr"]) / 2
    return {k: scores[k] for k in METRICS}


# --------------------------------------------------------------------------- EMScore


def emscore(
    cand_tokens: torch.Tensor,
    cand_mask: torch.Tensor,
    cand_global: torch.Tensor,
    cand_weights: torch.Tensor | None = None,
    *,
    frames: torch.Tensor | None = None,
    frame_mask: torch.Tensor | None = None,
    cand_video: torch.Tensor | None = None,
    ref_tokens: torch.Tensor | None = None,
    ref_mask: torch.Tensor | None = None,
    ref_global: torch.Tensor | None = None,
    ref_weights: torch.Tensor | None = None,
    ref_cand: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """EMScore of B candidate captions: ``{"EMScore(X,V)_figr_P": (B,) float64, ...}``.

    Args:
        cand_tokens, cand_mask, cand_global, cand_weights: ``(B, L, D)`` token embeddings,
            ``(B, L)`` SOS..EOS mask, ``(B, D)`` global embeddings, ``(B, L)`` idf weights
            (``None`` = uniform, i.e. ``idf=False``).
        frames, frame_mask: ``(NV, T, D)`` frame embeddings of NV videos, ``(NV, T)`` mask of
            real frames (videos with fewer frames are padded). ``cand_video`` ``(B,)`` gives
            each candidate's video (default: candidate ``b`` <-> video ``b``).
        ref_tokens, ref_mask, ref_global, ref_weights: the NR references, shaped as the
            candidates. ``ref_cand`` ``(NR,)`` gives each reference's candidate (default: one
            reference per candidate, in order); a candidate may have several.

    Returns every metric of ``EMScore(X,V)`` when frames are given, of ``EMScore(X,X*)`` when
    references are, and of ``EMScore(X,V,X*)`` when both are (see the module docstring). A
    candidate without references gets NaN in the reference-based scores.
    """
    n = cand_tokens.shape[0]
    out: dict[str, torch.Tensor] = {}
    by_type: dict[str, dict[str, torch.Tensor]] = {}
    if frames is not None:
        by_type["EMScore(X,V)"] = _video_scores(
            cand_tokens, cand_mask, cand_global, cand_weights, frames, frame_mask, cand_video
        )
    if ref_tokens is not None:
        if ref_global is None:
            raise ValueError("references need ref_global (their EOS embeddings)")
        by_type["EMScore(X,X*)"] = _reference_scores(
            cand_tokens, cand_mask, cand_global, cand_weights, ref_tokens, ref_mask, ref_global, ref_weights, ref_cand
        )
    if len(by_type) == 2:
        video, refs = by_type["EMScore(X,V)"], by_type["EMScore(X,X*)"]
        by_type["EMScore(X,V,X*)"] = _full(
            {k: (video[k] + refs[k]) / 2 for k in ("figr_P", "figr_R", "figr_F", "cogr")}
        )
    if not by_type:
        raise ValueError("EMScore needs frames, references, or both")
    for score_type in SCORE_TYPES:
        for metric, values in by_type.get(score_type, {}).items():
            out[f"{score_type}_{metric}"] = values
    assert all(v.shape == (n,) for v in out.values())
    return out


def _video_scores(cand_tokens, cand_mask, cand_global, cand_weights, frames, frame_mask, cand_video):
    videos = _rows(cand_video, frames.shape[0], cand_tokens.shape[0], "videos").to(frames.device)
    frame_mask = _as_mask(frame_mask, frames.shape[:2], frames.device)
    p, r, f = figr(cand_tokens, cand_weights, cand_mask, frames[videos], None, frame_mask[videos])
    coarse = cogr(cand_global, video_embedding(frames, frame_mask)[videos].to(cand_global.device))
    return _full({"figr_P": p, "figr_R": r, "figr_F": f, "cogr": coarse})


def _reference_scores(
    cand_tokens, cand_mask, cand_global, cand_weights, ref_tokens, ref_mask, ref_global, ref_weights, ref_cand
):
    n = cand_tokens.shape[0]
    owner = _rows(ref_cand, n, ref_tokens.shape[0], "references").to(cand_tokens.device)
    cand_mask = _as_mask(cand_mask, cand_tokens.shape[:2], cand_tokens.device)
    weights = None if cand_weights is None else cand_weights[owner]
    p, r, f = figr(cand_tokens[owner], weights, cand_mask[owner], ref_tokens, ref_weights, ref_mask)
    coarse = cogr(cand_global[owner], ref_global)
    return _full({name: _max_per_candidate(values, owner, n) for name, values in
                  (("figr_P", p), ("figr_R", r), ("figr_F", f), ("cogr", coarse))})


def _max_per_candidate(values: torch.Tensor, owner: torch.Tensor, n: int) -> torch.Tensor:
    best = torch.full((n,), float("-inf"), dtype=torch.float64, device=values.device)
    best = best.scatter_reduce(0, owner, values, reduce="amax", include_self=True)
    return best.masked_fill(best == float("-inf"), float("nan"))


# --------------------------------------------------------------------------- per-frame details


def frame_details(
    cand_tokens: torch.Tensor,
    cand_mask: torch.Tensor,
    cand_global: torch.Tensor,
    cand_weights: torch.Tensor | None,
    frames: torch.Tensor,
    frame_mask: torch.Tensor | None = None,
    cand_video: torch.Tensor | None = None,
    scores: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Per-frame scores ``{"EMScore(X,V)_figr_P": (B, T), ...}``, NaN on padded frames.

    Frame ``j`` alone is scored as a one-frame video: ``P_j = sum_i w_i sim[i, j]``,
    ``R_j = max_i sim[i, j]`` (frame j's term in the video recall), ``F_j``, ``cogr_j =
    cos(global(X), f_j)`` and ``full_*``. These explain the video score; they are not
    averaged into it. When ``scores`` (the output of :func:`emscore`) holds ``EMScore(X,X*)``,
    ``EMScore(X,V,X*)`` per frame combines frame j's ``(X,V)`` values with the candidate's
    ``(X,X*)`` values as the video-level score does.
    """
    videos = _rows(cand_video, frames.shape[0], cand_tokens.shape[0], "videos").to(frames.device)
    frame_mask = _as_mask(frame_mask, frames.shape[:2], frames.device)[videos]
    sim, cand_mask, frame_mask = _masked_similarity(cand_tokens, cand_mask, frames[videos], frame_mask)
    w = _normalised_weights(cand_weights, cand_mask)
    precision = (w[:, :, None] * sim.masked_fill(~cand_mask[:, :, None], 0.0)).sum(dim=1)
    recall = sim.amax(dim=1)
    coarse = (_unit(cand_global)[:, None, :] * _unit(frames[videos]).to(cand_global.device)).sum(dim=-1)
    video = _full({"figr_P": precision, "figr_R": recall, "figr_F": f_measure(precision, recall), "cogr": coarse})
    by_type = {"EMScore(X,V)": video}
    if scores is not None and "EMScore(X,X*)_cogr" in scores:
        refs = {k: scores[f"EMScore(X,X*)_{k}"][:, None] for k in ("figr_P", "figr_R", "figr_F", "cogr")}
        by_type["EMScore(X,V,X*)"] = _full({k: (video[k] + refs[k]) / 2 for k in refs})
    padded = ~frame_mask
    return {
        f"{score_type}_{metric}": values.masked_fill(padded, float("nan"))
        for score_type, metrics in by_type.items()
        for metric, values in metrics.items()
    }


def frame_detail_records(
    details: Mapping[str, torch.Tensor],
    row: int,
    frame_indices: Sequence[int],
    timestamps: Sequence[float],
) -> list[dict]:
    """One candidate's per-frame details in the seeds' ``frame_details`` shape:
    ``[{"frame_index", "timestamp", "<score type>": {metric: value}}, ...]`` (real frames only)."""
    records = []
    for j, (frame_index, timestamp) in enumerate(zip(frame_indices, timestamps)):
        record: dict = {"frame_index": int(frame_index), "timestamp": float(timestamp)}
        for key, values in details.items():
            score_type, metric = key.split("_", 1)
            record.setdefault(score_type, {})[metric] = float(values[row, j])
        records.append(record)
    return records
