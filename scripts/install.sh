#!/usr/bin/env bash
# Install everything vidqa needs on a fresh Debian/Ubuntu machine: the ffmpeg binaries
# (system package) and the Python package with its test dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q ffmpeg
fi
# An old pip (a new venv's bundled 23.x) can resolve this dependency set for an hour without
# installing anything; a current one takes minutes.
python3 -m pip install -q --upgrade pip setuptools wheel
python3 -m pip install -q -e ".[test]"
