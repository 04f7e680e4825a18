"""What each scorer's metrics measure: unit, range and meaning, one line per metric.

The wide views' metric columns carry these as their ``COMMENT`` (``\\d+ clip_scores_wide``;
see ``vidqa.db.views``). The table sits apart from the scorer classes so that reading it
imports no scorer module (and no torch): the views are refreshed at the end of every run.
Each scorer's entry names exactly its class's ``metrics`` (a test checks it); a new scorer
adds its entry here with its line in ``REGISTRY``.
"""

from __future__ import annotations

_CLIP_COSINE = "raw cosine of CLIP embeddings (no x100 or x2.5 scale, no clamp at 0), -1 to 1"

# EMScore (vidqa.metrics.emscore): what each score type compares, and each metric of it.
_EMSCORE_TYPES = {
    "EMScore(X,V)": "the caption X against the video's frames V",
    "EMScore(X,X*)": "the caption X against its reference captions X* (the maximum over references)",
    "EMScore(X,V,X*)": "the caption X against frames and references (figr P/R/F and cogr averaged over both "
                       "before combining)",
}
_EMSCORE_METRICS = {
    "figr_P": "fine-grained precision: idf-weighted mean over the caption's tokens of their best cosine with "
              "the target; " + _CLIP_COSINE,
    "figr_R": "fine-grained recall: mean over the target's frames (or idf-weighted reference tokens) of their "
              "best cosine with a caption token; " + _CLIP_COSINE,
    "figr_F": "harmonic mean 2PR/(P+R) of figr_P and figr_R (0 when P+R = 0); 0 to 1 when both are >= 0, "
              "the usual case",
    "cogr": "coarse-grained: cosine of the caption's global (EOS) embedding and the target's (normalised "
            "mean frame embedding, or the reference's EOS); " + _CLIP_COSINE,
    "full_P": "(figr_P + cogr) / 2; -1 to 1",
    "full_R": "(figr_R + cogr) / 2; -1 to 1",
    "full_F": "(figr_F + cogr) / 2; -1 to 1 (0 to 1 in the usual case)",
}
_VIDEOSCORE = ("VideoScore regression output for {aspect}, raw (not clamped): trained on human ratings from "
               "1.0 (bad) to 4.0 (perfect, like a real video), so about 1 to 4; higher is better")

METRIC_DOCS: dict[str, dict[str, str]] = {
    "technical": {
        "luminance_mean": "mean over sampled frames of each frame's mean Rec. 709 luma "
                          "(0.2126R + 0.7152G + 0.0722B); 0 (black) to 1 (white)",
        "luminance_min": "lowest frame mean luma over the sampled frames; 0 (black) to 1 (white)",
        "luminance_max": "highest frame mean luma over the sampled frames; 0 (black) to 1 (white)",
        "sharpness": "variance of the 4-neighbour Laplacian of luma on the 0-255 scale (cv2.Laplacian ksize=1), "
                     "mean over sampled frames; >= 0, unbounded: 0 for a flat frame, blur lowers it",
        "mse_dyn": "VideoScore's MSE-dyn: mean over consecutive pairs of frames[::dyn_step] of the squared RGB "
                   "difference (0-255, channels summed) per pixel; 0 (no change) to 195075 (3 x 255^2)",
        "ssim_sim": "VideoScore's SSIM-sim: mean SSIM of adjacent sampled frames (luma 0-1, 7x7 window); "
                    "-1 to 1, 1 = identical frames (temporal consistency)",
        "ssim_dyn": "VideoScore's SSIM-dyn: mean SSIM of adjacent frames of frames[::dyn_step]; -1 to 1, "
                    "lower = more change (dynamic degree)",
    },
    "emscore": {
        f"{t}_{m}": f"EMScore, {about}: {doc}"
        for t, about in _EMSCORE_TYPES.items() for m, doc in _EMSCORE_METRICS.items()
    },
    "text_video": {
        "text_video_sim": "CLIP similarity of the frames and a text field: " + _CLIP_COSINE
                          + ", reduced over frames (avg, max or min); typically 0.1 to 0.4",
    },
    "video_audio": {
        "video_audio_sim": "CLIP similarity of the frames and the audio's text (a provided description or "
                           "speech recognition): " + _CLIP_COSINE + ", reduced over frames",
        "video_audio_pass": "1 when min_score <= video_audio_sim <= max_score, else 0",
    },
    "aesthetic": {
        "aesthetic": "LAION aesthetic score: the MLP head on CLIP ViT-L/14 frame embeddings, mean over frames; "
                     "unbounded, about 1 to 10 (5.5 fair, 6.5 high)",
    },
    "clip_consistency": {
        "clip_adjacent_similarity": "mean cosine of consecutive sampled frames' CLIP embeddings (raw, -1 to 1; "
                                    "1 = the encoder sees no change)",
        "clip_background_consistency": "VBench's background consistency on CLIP: each frame against the one "
                                       "before and the first, cosines clamped at 0, averaged; 0 to 1",
    },
    "ocr": {
        "ocr_area_ratio_mean": "data-juicer's OCR area ratio: per sampled frame, the summed area of detected text "
                               "boxes (PP-OCRv4) over the frame's area, mean over frames; 0 (no text) to 1 "
                               "(overlapping boxes count twice)",
        "ocr_area_ratio_max": "the largest frame's text area ratio; 0 to 1",
        "ocr_boxes": "text boxes per sampled frame, mean over frames; >= 0",
    },
    "embedding": {
        "embedding_frames": "frames pooled into the clip's CLIP embedding (stored in clip_embeddings, not here); "
                            ">= 1",
    },
    "iqa": {
        "brisque": "BRISQUE no-reference quality (MSCN statistics scored by the brisque package's trained "
                   "regressor), per sampled frame, mean over frames with contrast; lower is better, about 0 to 100",
        "piqe": "PIQE no-reference quality (MATLAB's piqe: distorted share of the spatially active 16x16 "
                "blocks), per sampled frame, mean over frames; 0 (excellent) to 100 (bad, and flat frames)",
    },
    "motion": {
        "motion_mean": "data-juicer's motion score: Farneback optical-flow magnitude between consecutive sampled "
                       "frames (2 per second), mean per pair, mean over pairs; pixels per sampled step (or a "
                       "share of the frame diagonal when relative); >= 0, 0 = still",
        "motion_max": "largest pair motion of the clip (same unit as motion_mean); >= 0",
        "motion_still_share": "share of sampled pairs moving less than still_below (0.25 px); 0 to 1, 1 = still",
    },
    "videoscore": {
        aspect: _VIDEOSCORE.format(aspect=aspect.replace("_", " "))
        for aspect in ("visual_quality", "temporal_consistency", "dynamic_degree", "text_to_video_alignment",
                       "factual_consistency")
    },
}


def all_metric_docs() -> dict[str, str]:
    """``{metric: description}`` over every scorer (metric names are unique across scorers)."""
    out: dict[str, str] = {}
    for scorer, docs in METRIC_DOCS.items():
        for metric, doc in docs.items():
            if metric in out:
                raise ValueError(f"metric {metric!r} is declared twice (scorer {scorer!r})")
            out[metric] = doc
    return out
