"""EMScore as a scorer: captions from manifest rows against their clips' frames and
reference captions (REFERENCE.md section 1; the math is in ``vidqa.metrics.emscore``)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

from vidqa.errors import ScorerError
from vidqa.metrics.emscore import METRICS, SCORE_TYPES, emscore, frame_details, idf_table, idf_weights
from vidqa.models.clip_model import encode_text_tokens, text_padding, text_token_ids
from vidqa.video.sampling import SamplingSpec
from vidqa.hashing import stable_hash
from vidqa.scorers.base import Metric, ScoreItem, ScorerConfig
from vidqa.scorers.clip_based import ClipModelConfig, ClipBasedScorer, ClipBasedConfig

ScoreType = Literal["EMScore(X,X*)", "EMScore(X,V)", "EMScore(X,V,X*)"]
MetricName = Literal["figr_P", "figr_R", "figr_F", "cogr", "full_P", "full_R", "full_F"]


class EMScoreConfig(ClipBasedConfig):
    clip: ClipModelConfig = Field(default_factory=ClipModelConfig, description="CLIP model (paper: ViT-B/32 OpenAI).")
    sampling: SamplingSpec = Field(
        default_factory=lambda: SamplingSpec(method="every_n_seconds", seconds=1.0, max_frames=256),
        description="Frames matched against the caption (every_n_seconds or every_n_frames).",
    )
    candidate_key: str = Field("candidate", description="Manifest column with the caption to score.")
    reference_key: str = Field("reference", description="Manifest column with reference caption(s); optional.")
    score_types: list[ScoreType] = Field(list(SCORE_TYPES), description="Score types to store.")
    metrics: list[MetricName] = Field(list(METRICS), description="Metrics to store for each score type.")
    idf: bool = Field(True, description="IDF token weights over the whole input set (references, else candidates).")
    idf_corpus: Literal["reference", "distinct"] = Field(
        "reference", description="How the IDF documents are counted. reference: as the EMScore code, one document "
        "per (row, reference) pair (a reference shared by k candidates counts k times; else one per candidate), "
        "tokenized to the padded context length (the padding token joins the EOS mean). distinct: each distinct "
        "(video, text) once, real tokens only.",
    )
    return_all_frames: bool = Field(False, description="Store per-frame scores in each score's details.")


_TEXT_CACHE_SIZE = 8192


class EMScoreScorer(ClipBasedScorer):
    name: ClassVar[str] = "emscore"
    title: ClassVar[str] = "EMScore"
    summary: ClassVar[str] = "Caption vs video frames and reference captions."
    version: ClassVar[str] = "1"
    config_model: ClassVar[type[ScorerConfig]] = EMScoreConfig
    metrics: ClassVar[tuple[str, ...]] = tuple(f"{t}_{m}" for t in SCORE_TYPES for m in METRICS)

    def __init__(self, config=None, context=None):
        super().__init__(config, context)
        self._idf = None
        self._texts: OrderedDict[str, tuple[torch.Tensor, torch.Tensor, list[int]]] = OrderedDict()

    # -- inputs and run context --------------------------------------------------------

    def inputs(self, fields: dict[str, Any]) -> dict[str, Any]:
        candidate = fields.get(self.config.candidate_key)
        if not isinstance(candidate, str) or not candidate.strip():
            raise ScorerError(f"no {self.config.candidate_key!r} text to score")
        refs = fields.get(self.config.reference_key)
        refs = [refs] if isinstance(refs, str) else list(refs or [])
        refs = [r for r in refs if isinstance(r, str) and r.strip()]
        return {"candidate": candidate, "references": refs}

    def context_for(self, rows: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        """The IDF corpus of a whole source: its references (else its candidates), one per
        row and reference as the reference code flattens them, or once per distinct (video,
        text) under ``idf_corpus: distinct``."""
        if not self.config.idf:
            return {}
        refs, cands = {}, {}
        for n, (uri, fields) in enumerate(rows):
            try:
                inputs = self.inputs(fields)
            except ScorerError:
                continue
            row = n if self.config.idf_corpus == "reference" else uri
            for k, r in enumerate(inputs["references"]):
                refs[(row, k if self.config.idf_corpus == "reference" else r)] = r
            cands[(row, inputs["candidate"])] = inputs["candidate"]
        corpus = list(refs.values()) or list(cands.values())
        return {"idf_corpus": corpus} if corpus else {}

    def identity(self) -> dict[str, Any]:
        record = super().identity()
        if not self.config.idf or self.config.idf_corpus == "distinct":
            # The computation before the option existed: its scores keep their hash.
            record["config"].pop("idf_corpus", None)
        return record

    @property
    def _idf_corpus(self) -> list[str]:
        return (self.context.get("idf_corpus") or []) if self.config.idf else []

    def model_identity(self) -> dict[str, Any]:
        corpus = self._idf_corpus
        idf = {"idf_corpus": {"sha": stable_hash(corpus), "documents": len(corpus)}} if corpus else {}
        return {**super().model_identity(), **idf}

    def load(self) -> None:
        if self._idf_corpus:
            documents = text_token_ids(self.clip_model, self._idf_corpus)
            pad = text_padding(self.clip_model) if self.config.idf_corpus == "reference" else None
            self._idf = idf_table(documents, pad=pad)

    # -- scoring ---------------------------------------------------------------------------

    def _encode_texts(self, texts: list[str]) -> None:
        new = [t for t in dict.fromkeys(texts) if t not in self._texts]
        if new:
            enc = encode_text_tokens(self.clip_model, new)
            for i, text in enumerate(new):
                mask = enc.mask[i]
                self._texts[text] = (enc.token_embeddings[i][mask], enc.global_embeddings[i],
                                     enc.token_ids[i][mask].tolist())
        for t in texts:
            self._texts.move_to_end(t)
        while len(self._texts) > _TEXT_CACHE_SIZE:
            self._texts.popitem(last=False)

    def _stack(self, texts: list[str]):
        rows = [self._texts[t] for t in texts]
        width = max(r[0].shape[0] for r in rows)
        dim = rows[0][0].shape[1]
        tokens = torch.zeros((len(rows), width, dim), dtype=torch.float32)
        mask = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, (tok, _, _) in enumerate(rows):
            tokens[i, : tok.shape[0]] = tok
            mask[i, : tok.shape[0]] = True
        glob = torch.stack([r[1] for r in rows])
        if self.config.idf:
            if self._idf is None:
                raise ScorerError(
                    "EMScore with idf=true needs the IDF corpus of the whole input set; run it through the "
                    "score-videos flow (which computes it), or set idf=false"
                )
            weights = idf_weights([r[2] for r in rows], self._idf, length=width)
        else:
            weights = idf_weights([r[2] for r in rows], None, idf=False, length=width)
        return tokens, mask, glob, weights

    def score(self, items: list[ScoreItem]) -> list[dict[str, Metric] | Exception]:
        results: list[dict[str, Metric] | Exception] = []
        ok: list[int] = []
        inputs: list[dict[str, Any]] = []
        for n, item in enumerate(items):
            try:
                inputs.append(self.inputs(item.fields))
                ok.append(n)
                results.append({})
            except ScorerError as exc:
                results.append(exc)
        if ok:
            for n, scored in zip(ok, self._score([items[n] for n in ok], inputs)):
                results[n] = scored
        return results

    def _score(self, items: list[ScoreItem], inputs: list[dict[str, Any]]) -> list[dict[str, Metric]]:
        cands = [i["candidate"] for i in inputs]
        refs = [(n, r) for n, i in enumerate(inputs) for r in i["references"]]
        self._encode_texts(cands + [r for _, r in refs])

        frame_embs = self.encode_frames([item.frames for item in items])
        t_max = max(e.shape[0] for e in frame_embs)
        frames = torch.zeros((len(items), t_max, frame_embs[0].shape[1]), dtype=torch.float32)
        frame_mask = torch.zeros((len(items), t_max), dtype=torch.bool)
        for n, e in enumerate(frame_embs):
            frames[n, : e.shape[0]] = e
            frame_mask[n, : e.shape[0]] = True

        c_tok, c_mask, c_glob, c_w = self._stack(cands)
        kwargs: dict[str, Any] = {}
        if refs:
            r_tok, r_mask, r_glob, r_w = self._stack([r for _, r in refs])
            kwargs = dict(ref_tokens=r_tok, ref_mask=r_mask, ref_global=r_glob,
                          ref_weights=r_w.weights if self.config.idf else None,
                          ref_cand=torch.tensor([n for n, _ in refs]))
        cand_weights = c_w.weights if self.config.idf else None
        scores = emscore(c_tok, c_mask, c_glob, cand_weights, frames=frames, frame_mask=frame_mask, **kwargs)
        per_frame = None
        if self.config.return_all_frames:
            per_frame = frame_details(c_tok, c_mask, c_glob, cand_weights, frames, frame_mask, scores=scores)

        wanted = [f"{t}_{m}" for t in self.config.score_types for m in self.config.metrics]
        results: list[dict[str, Metric]] = []
        for n, item in enumerate(items):
            common = {"references": len(inputs[n]["references"]), "idf": self.config.idf,
                      "idf_uniform_fallback": bool(c_w.uniform_fallback[n]) if self.config.idf else None}
            out = {}
            for key in wanted:
                value = float(scores[key][n]) if key in scores else float("nan")
                if key.startswith(("EMScore(X,X*)", "EMScore(X,V,X*)")) and not inputs[n]["references"]:
                    continue  # reference-free row: only EMScore(X,V)
                details = dict(common)
                if per_frame is not None and key in per_frame:
                    details["frame_details"] = [
                        {"frame_index": int(i), "timestamp": float(t), "value": float(v)}
                        for i, t, v in zip(item.frames.indices, item.frames.timestamps,
                                           per_frame[key][n, : len(item.frames)])
                    ]
                out[key] = Metric.of(value, details)
            results.append(out)
        return results
