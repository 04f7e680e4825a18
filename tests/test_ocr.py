"""On-screen text (scorer ``ocr``) with the real PP-OCRv4 weights rapidocr-onnxruntime ships:
text on every frame of counter.mp4, none on fades.mp4 or a black video, a drawn box's share of
the frame, and the area formula against data-juicer's own."""

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from conftest import VIDEOS, run_ffmpeg
from vidqa.errors import ScorerError
from vidqa.metrics.text_area import polygon_area, text_area_ratio
from vidqa.scorers import build_scorer
from vidqa.scorers.base import ScoreItem
from vidqa.video.probe import probe_video

pytest.importorskip("rapidocr_onnxruntime")


def ocr_of(path, **config) -> dict:
    scorer = build_scorer("ocr", config).setup()
    probe = probe_video(str(path))
    frames = scorer.sampling.sample(str(path), probe)
    (out,) = scorer.score([ScoreItem(uri=str(path), probe=probe, frames=frames)])
    return out


def data_juicer_quad_area(points) -> float:
    """``video_ocr_area_ratio_filter``'s free-form box area: two triangles, (p0, p1, p2) and (p2, p3, p0)."""
    def triangle(p1, p2, p3):
        (x1, y1), (x2, y2), (x3, y3) = p1, p2, p3
        return 0.5 * abs(x1 * y2 + x2 * y3 + x3 * y1 - x2 * y1 - x3 * y2 - x1 * y3)

    points = [tuple(p) for p in points]
    return triangle(*points[:3]) + triangle(*(points[2:] + [points[0]]))


def test_the_area_is_data_juicers_on_convex_boxes():
    rng = np.random.default_rng(11)
    for _ in range(200):
        center, (w, h), angle = rng.uniform(50, 500, 2), rng.uniform(5, 200, 2), rng.uniform(0, np.pi)
        corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        box = corners @ rotation.T + center
        assert polygon_area(box) == pytest.approx(data_juicer_quad_area(box.tolist()), rel=1e-9)
        assert polygon_area(box) == pytest.approx(w * h, rel=1e-9)
    assert text_area_ratio([np.array([[0, 0], [10, 0], [10, 5], [0, 5]])], 100, 50) == pytest.approx(0.01)


def test_every_frame_of_counter_has_text_and_it_reads_as_written():
    out = ocr_of(VIDEOS / "counter.mp4", recognize=True, sampling={"method": "uniform", "n": 3, "max_size": 960})
    details = out["ocr_area_ratio_mean"].details
    assert all(n >= 1 for n in details["frame_boxes"]) and min(details["frame_ratios"]) > 0.01
    assert out["ocr_area_ratio_max"].value >= out["ocr_area_ratio_mean"].value > 0.01
    read = " ".join(t["text"] for frame in details["text"] for t in frame)
    assert "Frame" in read and "PTS" in read


def test_no_text_gives_zero(tmp_path):
    black = tmp_path / "black.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "color=c=black:s=320x240:r=5:d=2", "-c:v", "libx264", str(black))
    for path in (VIDEOS / "fades.mp4", black):
        out = ocr_of(path)
        assert out["ocr_area_ratio_mean"].value == 0.0 and out["ocr_boxes"].value == 0.0, path


def test_a_drawn_text_box_is_found_at_its_share_of_the_frame(tmp_path):
    picture = Image.new("RGB", (640, 360), "white")
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=56)
    draw.text((60, 140), "QUALITY 2026", fill="black", font=font)
    left, top, right, bottom = draw.textbbox((60, 140), "QUALITY 2026", font=font)
    drawn_share = (right - left) * (bottom - top) / (640 * 360)
    picture.save(tmp_path / "text.png")
    video = tmp_path / "text.mp4"
    run_ffmpeg("-loop", "1", "-i", str(tmp_path / "text.png"), "-t", "1", "-r", "5", "-c:v", "libx264",
               "-pix_fmt", "yuv420p", str(video))
    out = ocr_of(video)
    # The detector's box hugs the line of text with a margin (PP-OCR's unclip ratio 1.6).
    assert drawn_share * 0.8 < out["ocr_area_ratio_mean"].value < drawn_share * 2.0
    assert out["ocr_boxes"].value == 1.0


def test_missing_weights_say_how_to_get_them(tmp_path):
    with pytest.raises(ScorerError, match="nope.onnx.*rapidocr-onnxruntime"):
        build_scorer("ocr", {"det_model": str(tmp_path / "nope.onnx")}).config_hash
