"""Supervising ffmpeg and ffprobe processes: bounded runs, pipes that never block them.

Every run gets an argument list (never a shell string), stdin closed and a timeout,
so that a pathological file cannot hang a worker. :func:`run` is the whole-output
path (ffprobe); a streaming decode starts its own process and bounds it with a
:class:`Watchdog`, whose deadline can come forward once the duration is known.
"""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import threading
import time
from typing import IO

from pipeline.errors import ClipError
from pipeline.media.ffmpeg_log import last_stderr_line, open_failure

PIPE_BYTES = 1 << 20  # Linux's default pipe-max-size for unprivileged processes


class Watchdog:
    """Kills ``proc`` at its deadline; the deadline can be brought forward while it runs."""

    def __init__(self, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.fired = False
        self._proc = proc
        self._start = time.monotonic()
        self._deadline = self._start + timeout_s
        self._done = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def shorten(self, timeout_s: float) -> None:
        with self._cond:
            if timeout_s < self.timeout_s:
                self.timeout_s = timeout_s
                self._deadline = self._start + timeout_s
                self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._done = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        with self._cond:
            while not self._done:
                left = self._deadline - time.monotonic()
                if left <= 0:
                    self.fired = True
                    self._proc.kill()
                    return
                self._cond.wait(left)


def run(args: list[str], timeout_s: float, url: str) -> bytes:
    """Run ffmpeg or ffprobe (``args[0]``) on ``url``; a failure becomes a ClipError.

    The error says why the input could not be opened (:func:`open_failure`), else
    ffmpeg's last line.
    """
    try:
        proc = subprocess.run(
            args, capture_output=True, timeout=timeout_s, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise ClipError(f"cannot decode: {args[0]} timed out after {timeout_s:.0f} s") from exc
    if proc.returncode != 0:
        why = open_failure(proc.stderr, url) or last_stderr_line(proc.stderr)
        raise ClipError(f"cannot decode: {why}")
    return proc.stdout


def widen_pipe(stream: IO[bytes] | None) -> None:
    """Let ffmpeg run several frames ahead: a 224² RGB frame (150 KB) is more than the
    default 64 KiB pipe, so without this, decoding stalls on every frame Python handles."""
    if stream is None or not hasattr(fcntl, "F_SETPIPE_SZ"):
        return
    with contextlib.suppress(OSError):  # above /proc/sys/fs/pipe-max-size: keep the default
        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def drain_bytes(stream: IO[bytes], chunks: list[bytes]) -> None:
    """Read ``stream`` to its end into ``chunks``, then close it (a reader thread's job)."""
    with stream:
        while chunk := stream.read(1 << 16):
            chunks.append(chunk)
