"""CLIP image-encoder throughput, and EMScore end to end against a naive per-video, per-frame
loop (the way the public operators run), in the same process.

Random weights from open_clip's real ViT-B/32 and ViT-L/14 configs (speed does not depend on
the weights; no download). CPU float32 here; on CUDA the encoder runs in bf16.

    python bench/bench_clip.py [--out bench/results/clip.md] [--device auto|cpu|cuda]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidqa.metrics.emscore import emscore  # noqa: E402
from vidqa.video.decode import iter_frames  # noqa: E402
from vidqa.models.clip_model import encode_images, encode_pixels, encode_text_tokens, load_clip  # noqa: E402
from vidqa.video.probe import probe_video  # noqa: E402
from vidqa.video.sampling import SamplingSpec  # noqa: E402
from vidqa.scorers.base import ScoreItem  # noqa: E402
from vidqa.scorers.emscore import EMScoreScorer  # noqa: E402

VIDEOS = (ROOT / ".." / "shared" / "videos").resolve()
CAPTION = "A person is frying a pan of eggs that are colored pink and green."


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def encoder_rows(device: str, precision: str) -> list[tuple]:
    rows = []
    for name, n in (("ViT-B-32", 128), ("ViT-L-14", 32)):
        clip = load_clip(name, None, device=device, precision=precision)
        frames = torch.randint(0, 256, (n, 360, 640, 3), dtype=torch.uint8).numpy()
        base = None
        for batch in (1, 8, 32) if device == "cpu" else (1, 32, 128):
            encode_images(clip, frames[:batch], batch)  # warm-up
            sync(device)
            t = time.perf_counter()
            encode_images(clip, frames, batch)
            sync(device)
            fps = n / (time.perf_counter() - t)
            base = base or fps
            rows.append((name, precision, batch, n, fps, fps / base, rss_gib()))
    return rows


def decode_items(spec: SamplingSpec) -> list[ScoreItem]:
    items = []
    for path in sorted(VIDEOS.iterdir()):
        if path.suffix in (".mp4", ".mkv", ".mov"):
            probe = probe_video(str(path))
            items.append(ScoreItem(str(path), probe, spec.sample(str(path), probe), {"candidate": CAPTION}))
    return items


def sequential_frames(item: ScoreItem):
    """The operators' decode: read every frame of the video in order (cv2.VideoCapture
    style), keep the sampled ones. Same pixels as vidqa's seeking decoder."""
    wanted = {int(i): k for k, i in enumerate(item.frames.indices)}
    kept = [None] * len(wanted)
    for n, frame in enumerate(iter_frames(item.uri, item.probe)):
        if n in wanted:
            kept[wanted[n]] = frame.copy()
    return kept


def naive_emscore(clip, items, decode_sequentially: bool = False) -> list[float]:
    """Per video: text encoded again, each frame preprocessed and encoded alone."""
    out = []
    for item in items:
        enc = encode_text_tokens(clip, [CAPTION])
        frames = sequential_frames(item) if decode_sequentially else item.frames.array
        embs = torch.cat([encode_pixels(clip, clip.preprocess(f[None]), 1) for f in frames])
        s = emscore(enc.token_embeddings, enc.mask, enc.global_embeddings, None, frames=embs[None])
        out.append(float(s["EMScore(X,V)_full_F"][0]))
    return out


def emscore_rows(device: str) -> tuple[list[tuple], float, float, float]:
    spec = SamplingSpec(method="every_n_seconds", seconds=1.0)
    config = {"clip": {"model": "ViT-B-32", "pretrained": None}, "sampling": spec.model_dump(), "idf": False,
              "runtime": {"device": device, "batch_size": 64}}
    scorer = EMScoreScorer(config).setup()
    t = time.perf_counter()
    items = decode_items(spec)
    decode_s = time.perf_counter() - t  # probe + vidqa's seeking decode
    t = time.perf_counter()
    for item in items:
        probe_video(item.uri)
    probe_s = time.perf_counter() - t
    n_frames = sum(len(i.frames) for i in items)

    naive_emscore(scorer.clip_model, items[:1])  # warm-up
    sync(device)
    t = time.perf_counter()
    naive = naive_emscore(scorer.clip_model, items)
    sync(device)
    naive_s = time.perf_counter() - t + decode_s
    t = time.perf_counter()
    operator = naive_emscore(scorer.clip_model, items, decode_sequentially=True)
    sync(device)
    operator_s = time.perf_counter() - t + probe_s

    scorer.score(items[:1])  # warm-up
    scorer._texts.clear()
    sync(device)
    t = time.perf_counter()
    ours = [r["EMScore(X,V)_full_F"].value for r in scorer.score(items)]
    sync(device)
    ours_s = time.perf_counter() - t + decode_s
    diff = max(abs(a - b) for a, b in zip(ours, naive + operator))
    n = len(items)
    rows = [
        ("operator-style loop (sequential full decode, per frame)", n, n_frames, operator_s, n / operator_s, 1.0),
        ("naive loop on vidqa's decoder (per video, per frame)", n, n_frames, naive_s, n / naive_s,
         operator_s / naive_s),
        ("vidqa (seeking decode, batched across videos)", n, n_frames, ours_s, n / ours_s, operator_s / ours_s),
    ]
    return rows, diff, decode_s, probe_s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    precision = "bf16" if device == "cuda" else "fp32"
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    lines = [f"Device: {device} ({gpu}); torch {torch.__version__}", "",
             "| model | precision | batch | frames | frames/s | vs batch 1 | peak RSS GiB |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in encoder_rows(device, precision):
        lines.append(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.1f} | {r[5]:.2f}x | {r[6]:.2f} |")
    rows, diff, decode_s, probe_s = emscore_rows(device)
    lines += ["", f"EMScore(X,V), ViT-B/32 (random weights), every_n_seconds(1), {rows[0][1]} shared videos "
              f"(probing {probe_s:.2f} s charged to all; vidqa's probe + seeking decode {decode_s:.2f} s):", "",
              "| pipeline | videos | frames | seconds | videos/s | speed-up |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.2f}x |")
    lines.append(f"\nmax |EMScore(X,V)_full_F difference| between vidqa and the loops: {diff:.2e}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
