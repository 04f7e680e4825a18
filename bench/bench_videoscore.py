"""VideoScore cost per video at the real architecture sizes, with random weights.

Each measurement runs in its own process (clean peak memory): the real widths of
Idefics2-8B (Mistral-7B + SigLIP-so400m) or Qwen2-VL-7B, scored on
``../shared/videos/videoscore_video1.mp4`` with its prompt through ``VideoScoreModel``.

On a CPU the full 8B model does not fit in float32 here, so depth is reduced: the cost of
one text layer and one vision layer is measured from runs at (1,1), (2,1) and (1,2)
layers, and the full depth is extrapolated linearly (inference cost is linear in depth;
the embeddings, perceiver/merger and head are in the (1,1) run). Memory at full depth is
the full parameter bytes (counted on the meta device) plus the measured activation peak.

With ``--device cuda`` the full model runs in bf16 at each batch size: videos/s, peak GPU
memory and the best batch size.

    python bench/bench_videoscore.py                       # CPU, both families
    python bench/bench_videoscore.py --device cuda --batch-sizes 1,2,4,8
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

VIDEO = ROOT.parent / "shared" / "videos" / "videoscore_video1.mp4"
PROMPT = ("Near the Elephant Gate village, they approach the haunted house at night. Rajiv feels anxious, but "
          "Bhavesh encourages him. As they reach the house, a mysterious sound in the air adds to the suspense.")
LAYER_KEYS = {"idefics2": (("text", "num_hidden_layers"), ("vision", "num_hidden_layers")),
              "qwen2_vl": (("text", "num_hidden_layers"), ("vision", "depth"))}


def _sizes(family: str, text_layers: int | None, vision_layers: int | None) -> dict:
    from videoscore_fixtures import REAL_IDEFICS2, REAL_QWEN2_VL

    sizes = json.loads(json.dumps(REAL_IDEFICS2 if family == "idefics2" else REAL_QWEN2_VL))
    (t_part, t_key), (v_part, v_key) = LAYER_KEYS[family]
    if text_layers is not None:
        sizes[t_part][t_key] = text_layers
    if vision_layers is not None:
        sizes[v_part][v_key] = vision_layers
    return sizes


def _parts(family: str, sizes: dict):
    from videoscore_fixtures import idefics2_parts, qwen2_vl_parts

    return (idefics2_parts if family == "idefics2" else qwen2_vl_parts)(sizes)


def full_parameter_count(family: str) -> int:
    import torch

    from vidqa.models.videoscore import head_class

    config, _ = _parts(family, _sizes(family, None, None))
    with torch.device("meta"):
        model = head_class(family)(config)
    return sum(p.numel() for p in model.parameters())


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(args: argparse.Namespace) -> dict:
    """One measurement: build, score ``batch`` copies of the video once, report."""
    import numpy as np
    import torch

    from vidqa.models.videoscore import DEFAULT_SPECS, VideoScoreModel, head_class
    from vidqa.video.probe import probe_video
    from vidqa.video.sampling import linspace_positions

    torch.manual_seed(0)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    config, processor = _parts(args.family, _sizes(args.family, args.text_layers, args.vision_layers))
    build_start = time.perf_counter()
    with torch.device(args.device):
        module = head_class(args.family)._from_config(config, attn_implementation="sdpa", dtype=dtype).eval()
    build_s = time.perf_counter() - build_start
    params = sum(p.numel() for p in module.parameters())
    with tempfile.TemporaryDirectory() as folder:
        config.save_pretrained(folder)
        model = VideoScoreModel("bench", Path(folder), DEFAULT_SPECS[args.family], module, processor,
                                args.device, dtype)
    probe = probe_video(str(VIDEO))
    spec = DEFAULT_SPECS[args.family]
    decode_start = time.perf_counter()
    if spec.fps is None:
        positions = linspace_positions(probe, args.frames)
    else:
        positions = linspace_positions(probe, args.frames, fps=spec.fps, rounding="nearest", multiple=2, min_frames=4)
    from vidqa.video.decode import decode_frames

    unique = np.unique(positions)
    frames = decode_frames(str(VIDEO), probe, unique).at(positions)
    decode_s = time.perf_counter() - decode_start
    videos, prompts = [frames] * args.batch, [PROMPT] * args.batch
    pixels = {} if args.family == "idefics2" else {
        "min_pixels": 128 * 28 * 28, "max_pixels": 768 * 28 * 28, "total_pixels": 24576 * 28 * 28}
    inputs = model.inputs(videos, prompts, **pixels)
    if args.device == "cuda":
        model.forward(model.inputs(videos[:1], prompts[:1], **pixels))  # warm-up (kernels, allocator)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    out = model.forward(inputs)
    if args.device == "cuda":
        torch.cuda.synchronize()
    forward_s = time.perf_counter() - start
    result = {
        "family": args.family, "frames": args.frames, "batch": args.batch, "text_layers": args.text_layers,
        "vision_layers": args.vision_layers, "dtype": args.dtype, "device": args.device, "params": params,
        "tokens": int(inputs["input_ids"].shape[1]), "build_s": build_s, "decode_s": decode_s,
        "forward_s": forward_s, "s_per_video": forward_s / args.batch, "finite": bool(torch.isfinite(out).all()),
        "peak_rss_mib": _peak_rss_mib(),
    }
    if args.device == "cuda":
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def measure(**kw) -> dict:
    cmd = [sys.executable, __file__, "--child"] + [f"--{k.replace('_', '-')}={v}" for k, v in kw.items() if v is not None]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode == -9:
        return {"error": "killed: out of host memory", **kw}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}",
                **kw}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cpu_table(families: list[str], frames_by_family: dict[str, list[int]]) -> str:
    full_layers = {"idefics2": (32, 27), "qwen2_vl": (28, 32)}
    rows = []
    for family in families:
        n_full = full_parameter_count(family)
        for frames in frames_by_family[family]:
            base = measure(family=family, frames=frames, batch=1, text_layers=1, vision_layers=1)
            text2 = measure(family=family, frames=frames, batch=1, text_layers=2, vision_layers=1)
            vis2 = measure(family=family, frames=frames, batch=1, text_layers=1, vision_layers=2)
            # One batched pass (the slowest run) at the smallest frame count only.
            batch2 = (measure(family=family, frames=frames, batch=2, text_layers=1, vision_layers=1)
                      if frames == frames_by_family[family][0] else {})
            if any("error" in r for r in (base, text2, vis2, batch2)):
                errors = sorted({r["error"] for r in (base, text2, vis2, batch2) if "error" in r})
                rows.append(f"| {family} | {frames} | {'; '.join(errors)} |" + " |" * 10)
                continue
            per_text = max(0.0, text2["s_per_video"] - base["s_per_video"])
            per_vision = max(0.0, vis2["s_per_video"] - base["s_per_video"])
            lt, lv = full_layers[family]
            full_s = base["s_per_video"] + (lt - 1) * per_text + (lv - 1) * per_vision
            ratio = f"{batch2['s_per_video'] / base['s_per_video']:.2f}" if batch2 else "-"
            activations = base["peak_rss_mib"] - base["params"] * 4 / 2**20
            full_fp32 = n_full * 4 / 2**30 + activations / 1024
            rows.append(
                f"| {family} | {frames} | {base['tokens']} | {base['s_per_video']:.1f} | {per_text:.1f} | "
                f"{per_vision:.1f} | {full_s:.0f} | {ratio} | "
                f"{base['peak_rss_mib']:.0f} | {n_full / 1e9:.2f} | {full_fp32:.1f} | {n_full * 2 / 2**30:.1f} | "
                f"{base['decode_s']:.2f} |"
            )
            print(rows[-1], flush=True)
    header = (
        "| family | frames | tokens/video | s/video at 1+1 layers | s per extra text layer | "
        "s per extra vision layer | s/video full depth (extrapolated) | batch 2 vs 1 (s/video ratio) | "
        "peak RSS MiB at 1+1 layers | params full (B) | est. peak GiB full fp32 | weights GiB full bf16 | "
        "frame decode s |\n|" + "---|" * 13
    )
    return header + "\n" + "\n".join(rows)


def gpu_table(families: list[str], frames_by_family: dict[str, list[int]], batch_sizes: list[int]) -> str:
    rows = []
    for family in families:
        for frames in frames_by_family[family]:
            best = None
            for b in batch_sizes:
                r = measure(family=family, frames=frames, batch=b, device="cuda", dtype="bf16")
                if "error" in r:
                    rows.append(f"| {family} | {frames} | {b} | - | - | {r['error'][:80]} |")
                    break
                vps = 1 / r["s_per_video"]
                best = max(best or (0, 0), (vps, b))
                rows.append(f"| {family} | {frames} | {b} | {vps:.2f} | {r['peak_gpu_mib'] / 1024:.1f} | "
                            f"{r['tokens']} tokens |")
                print(rows[-1], flush=True)
            if best:
                rows.append(f"| {family} | {frames} | best: {best[1]} | {best[0]:.2f} | | |")
    return ("| family | frames | batch | videos/s | peak GPU GiB | note |\n|---|---|---|---|---|---|\n"
            + "\n".join(rows))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--child", action="store_true")
    p.add_argument("--family", default="idefics2")
    # Qwen2-VL-7B on video1 is ~7.5k tokens: minutes per layer on a small CPU; ask for it.
    p.add_argument("--families", default="idefics2")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--batch-sizes", default="1,2,4,8")
    p.add_argument("--text-layers", type=int)
    p.add_argument("--vision-layers", type=int)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    families = args.families.split(",")
    # Idefics2: VideoScore's 16 and v1.1's 48 frames; Qwen2-VL: 8/s over the 3 s video (24), and a 16 cap.
    frames_by_family = {"idefics2": [16, 48], "qwen2_vl": [16, 24]}
    if args.device == "cuda":
        table = gpu_table(families, frames_by_family, [int(b) for b in args.batch_sizes.split(",")])
    else:
        table = cpu_table(families, frames_by_family)
    print(table)
    out = Path(args.out or ROOT / "bench" / "results" / f"videoscore_{args.device}.md")
    out.write_text(f"# VideoScore cost per video ({args.device}, random weights, real widths)\n\n"
                   f"Video: videoscore_video1.mp4 (768x640, 24 frames), its prompt. Command: "
                   f"`python bench/bench_videoscore.py --device {args.device}`\n\n{table}\n")


if __name__ == "__main__":
    main()
