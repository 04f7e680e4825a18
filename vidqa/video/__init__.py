"""Video I/O: probe a file (libav in the process, else ffprobe), decode frames by presentation time and audio (ffmpeg),
choose frames (samplers) and split videos into clips (scenes, windows)."""
