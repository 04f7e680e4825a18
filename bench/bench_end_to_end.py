"""EMScore and aesthetic end to end on 100 short clips, in one process: vidqa's shard path
(ledger, probe, decode, batched encoders, rows written to Postgres) with each decode engine,
against the reference way (per video: decode every frame in order, keep the sampled ones,
encode that video's frames as one batch, score it).

Clips: 100 H.264 clips of 2-4 s, 640x360 at 24-30 fps, made with ffmpeg's lavfi sources
(``--clips DIR`` reuses them). Models: open_clip's ViT-B/32 config with seeded random weights
(speed does not depend on the weights; no download) and the real LAION v1 ViT-B/32 aesthetic
head from ../shared/models. Both scorers read the same frames (1 per second, EMScore's
default; the aesthetic head averages them): vidqa decodes and encodes them once per clip for
both, the reference way once per operator.

Engines: the ffprobe and ffmpeg binaries, one video after the other (the engine before
in-process decoding); torchcodec in the process, probed by ffprobe, then in the process
(VIDQA_PROBER=libav); the same with N videos decoded ahead in threads while the encoders
score (VIDQA_DECODE_WORKERS). Every engine's stored values are
compared with the reference way's: the largest |difference| is printed.

    python bench/bench_end_to_end.py [--clips DIR] [--n 100] [--out bench/results/end_to_end_cpu.md]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from vidqa.config import get_settings, reload_settings  # noqa: E402
from vidqa.db import get_engine, upgrade  # noqa: E402
from vidqa.metrics.emscore import emscore  # noqa: E402
from vidqa.models.aesthetic import aesthetic_scores  # noqa: E402
from vidqa.models.clip_model import encode_pixels, encode_text_tokens  # noqa: E402
from vidqa.scorers import build_scorer  # noqa: E402
from vidqa.scoring.job import ScorerSpec, ShardJob  # noqa: E402
from vidqa.scoring.shard import prepare_scorers, score_shard  # noqa: E402
from vidqa.storage import Storage  # noqa: E402
from vidqa.video.clips import ClipSpec  # noqa: E402
from vidqa.video.decode import iter_frames  # noqa: E402
from vidqa.video.probe import probe_video  # noqa: E402

MODELS = (ROOT / ".." / "shared" / "models").resolve()
CAPTION = "A test pattern with moving colour bars and a counter."
CLIP = {"model": "ViT-B-32", "pretrained": None}
SAMPLING = {"method": "every_n_seconds", "seconds": 1.0}
SCORERS = [
    ScorerSpec("emscore", {"clip": CLIP, "sampling": SAMPLING, "idf": False, "runtime": {"batch_size": 64}}),
    ScorerSpec("aesthetic", {"clip": CLIP, "head": str(MODELS / "laion-aesthetic" / "sa_0_4_vit_b_32_linear.pth"),
                             "sampling": SAMPLING, "runtime": {"batch_size": 64}}),
]
SOURCES = ("testsrc2", "smptehdbars", "mandelbrot", "life=mold=10:ratio=0.5:death_color=#C83232:life_color=#00ff00")


def make_clips(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"clip{i:03d}.mp4"
        if not path.exists():
            source = SOURCES[i % len(SOURCES)]
            seconds, rate = 2 + i % 3, (24, 25, 30)[i % 3]
            graph = f"{source}:size=640x360:rate={rate}" if ":" in source else f"{source}=size=640x360:rate={rate}"
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-t", str(seconds), "-i", graph,
                            "-vf", f"hue=h={(i * 37) % 360}", "-c:v", "libx264", "-preset", "veryfast", "-g", str(rate),
                            "-pix_fmt", "yuv420p", str(path)], check=True)  # fmt: skip
        paths.append(path)
    (folder / "captions.csv").write_text("video_path,candidate\n" + "".join(f"{p.name},{CAPTION}\n" for p in paths))
    return paths


def reference_way(paths: list[Path]) -> tuple[dict[tuple[str, str], float], float]:
    """Each operator on its own, as the public ones run (EMScore's reference scorer, then an
    aesthetic operator): per video, probe, decode every frame in order (their cv2 loop, here
    with the ffmpeg binary so the pixels are vidqa's), keep 1 frame per second, encode them as
    one batch, score; EMScore encodes the caption again for every video."""
    emscorer = build_scorer("emscore", SCORERS[0].config).setup()
    aesthetic = build_scorer("aesthetic", SCORERS[1].config).setup()
    clip = emscorer.clip_model
    values = {}
    started = time.perf_counter()
    for operator in ("EMScore(X,V)_full_F", "aesthetic"):
        for path in paths:
            probe = probe_video(str(path))
            wanted = {int(i) for i in emscorer.sampling.indices(probe)}
            frames = np.stack([f.copy() for n, f in enumerate(iter_frames(str(path), probe)) if n in wanted])
            emb = encode_pixels(clip, clip.preprocess(frames), 64)
            if operator == "aesthetic":
                values[(path.name, operator)] = float(aesthetic_scores(aesthetic.head, emb).mean())
                continue
            text = encode_text_tokens(clip, [CAPTION])
            s = emscore(text.token_embeddings, text.mask, text.global_embeddings, None, frames=emb[None])
            values[(path.name, operator)] = float(s["EMScore(X,V)_full_F"][0])
    return values, time.perf_counter() - started


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak (VmHWM) starts again from now


def peak_rss_gib() -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM"))
    return int(line.split()[1]) / 2**20


def vidqa_way(url: str, folder: Path, decoder: str, workers: int,
              prober: str = "auto") -> tuple[dict[tuple[str, str], float], float]:
    os.environ.update(VIDQA_DECODER=decoder, VIDQA_DECODE_WORKERS=str(workers), VIDQA_PROBER=prober)
    reload_settings()
    engine = get_engine(url)
    with engine.begin() as conn:  # a fresh ledger, so every clip is scored
        conn.execute(sa.text("TRUNCATE videos, runs, scorer_configs RESTART IDENTITY CASCADE"))
    started = time.perf_counter()
    refs = Storage().list_videos(str(folder / "captions.csv"))
    job = ShardJob(run_id=None, refs=refs, scorers=prepare_scorers(SCORERS, refs), clips=ClipSpec())
    result = score_shard(engine, job)
    seconds = time.perf_counter() - started
    assert all(o.status == "scored" for o in result.outcomes), [o.reason for o in result.outcomes if o.reason]
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT v.uri, s.metric, s.value FROM scores s JOIN clips c ON c.id = s.clip_id "
            "JOIN videos v ON v.id = c.video_id WHERE s.metric IN ('EMScore(X,V)_full_F', 'aesthetic')")).all()
    return {(Path(uri).name, metric): value for uri, metric, value in rows}, seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", default=None, help="folder for the clips (made once, reused)")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vidqa-bench-"))
    folder = Path(args.clips) if args.clips else tmp / "clips"
    os.environ.setdefault("VIDQA_HOME", str(tmp / "home"))
    paths = make_clips(folder, args.n)
    frames = sum(len(build_scorer("emscore", SCORERS[0].config).sampling.indices(probe_video(str(p)))) for p in paths)

    import pgserver

    server = pgserver.get_server(tmp / "pg")
    url = sa.engine.make_url(server.get_uri()).set(drivername="postgresql+psycopg").render_as_string(False)
    upgrade("head", url)
    vidqa_way(url, folder, "auto", 0)  # warm-up: models loaded, libraries imported, files cached

    reset_peak_rss()
    reference, reference_s = reference_way(paths)
    rows = [("reference way (each operator: full sequential decode, one video at a time)", reference_s, None,
             peak_rss_gib())]
    engines = [("vidqa, ffprobe + ffmpeg binary, one video after the other", "ffmpeg", "ffprobe", 0),
               ("vidqa, ffprobe + torchcodec in process, one video after the other", "torchcodec", "ffprobe", 0),
               ("vidqa, libav probe + torchcodec in process, one video after the other", "torchcodec", "libav", 0)]
    engines += [(f"vidqa, libav probe + torchcodec, {w} decode thread(s) ahead of the encoders", "torchcodec", "libav", w)
                for w in args.workers]
    for label, decoder, prober, workers in engines:
        reset_peak_rss()
        values, seconds = vidqa_way(url, folder, decoder, workers, prober)
        assert values.keys() == reference.keys(), "every clip scored by both"
        diff = {m: max(abs(values[k] - reference[k]) for k in reference if k[1] == m) for _, m in reference}
        rows.append((label, seconds, diff, peak_rss_gib()))
    server.cleanup()

    lines = [f"EMScore(X,V) and LAION aesthetic (ViT-B/32, random weights; v1 linear head), {len(paths)} clips of "
             f"2-4 s at 640x360, {frames} frames at 1 per second; torch {torch.__version__}, "
             f"{torch.get_num_threads()} CPU threads; at most {get_settings().decode_ahead} videos decoded ahead", "",
             "| pipeline | seconds | clips/s | speed-up | max abs diff EMScore(X,V)_full_F | max abs diff aesthetic "
             "| peak RSS GiB |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label, seconds, diff, rss in rows:
        shown = " | ".join("-" if diff is None else f"{diff[m]:.1e}" for m in ("EMScore(X,V)_full_F", "aesthetic"))
        lines.append(f"| {label} | {seconds:.2f} | {len(paths) / seconds:.2f} | {reference_s / seconds:.2f}x | {shown} | {rss:.2f} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
