"""Start the reaper (:mod:`vidqa.cli.reaper`) beside a ``vidqa`` command, and turn SIGTERM
into a normal exit (so atexit handlers stop what the command started)."""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
from pathlib import Path


def guard_children() -> None:
    from vidqa.config import get_settings

    if os.environ.get("VIDQA_NO_REAPER"):
        return
    reaper = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("reaper.py")), str(os.getpid()), str(get_settings().pgdata)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # a terminal's Ctrl-C or hang-up must not end it before it cleans up
        close_fds=True,
    )

    def bye() -> None:
        try:
            reaper.stdin.write(b"bye")
            reaper.stdin.close()
        except OSError:
            pass

    # Registered before anything the command starts, so it runs after their own cleanup
    # (atexit is last-in, first-out).
    atexit.register(bye)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
