"""Video I/O: probe a file (ffprobe), decode frames by presentation time and audio (ffmpeg),
choose frames (samplers) and split videos into clips (scenes, windows)."""
