"""Probe and decode one media file with ffprobe / ffmpeg or in-process, through pipes.

Nothing is written to disk, every subprocess gets an argument list (never a shell
string), and every input is opened from a local file only, by the demuxer its suffix
promises (:mod:`schemas.containers`). The modules,
by job:

- :mod:`~pipeline.media.decode`: one ffmpeg process decodes a clip's video and audio
  onto the container's timeline (:func:`decode_any`, :func:`decode_clip`), at the size
  of one fixed rule (:data:`MAX_DECODE_PIXELS`, :func:`decode_size`).
- :mod:`~pipeline.media.inprocess`: the same decode of a clean clip inside the
  worker with PyAV, no process (:func:`decode_in_process`); anything else goes to
  the process.
- :mod:`~pipeline.media.ffprobe`: what ffprobe says about a file (:func:`probe`).
- :mod:`~pipeline.media.held_frame`: the frames a held last frame adds to the
  process's decode, where the track ends later than one step after it.
- :mod:`~pipeline.media.ppm`: the stream of PPM frames the decode reads.
- :mod:`~pipeline.media.ffmpeg_log`: ffmpeg's stderr: open failures, the last error,
  the input banner.
- :mod:`~pipeline.media.process`: supervised runs: timeouts, watchdog, pipes.
- :mod:`~pipeline.media.ffmpeg_args`: how every run names and opens its input
  (:func:`input_guard`: the demuxer its suffix promises), and the audio timeline filter.
- :mod:`~pipeline.media.timeouts`: how long a run may take.
"""

from __future__ import annotations

from pipeline.media.decode import (
    MAX_DECODE_PIXELS,
    DecodedClip,
    decode_any,
    decode_clip,
    decode_scale,
    decode_size,
)
from pipeline.media.ffmpeg_args import input_guard
from pipeline.media.ffmpeg_log import InputReport
from pipeline.media.ffprobe import MediaInfo, probe
from pipeline.media.held_frame import may_hold, video_end_s, with_held_frames
from pipeline.media.inprocess import decode_in_process
from pipeline.media.timeouts import decode_timeout_s

__all__ = [
    "MAX_DECODE_PIXELS",
    "DecodedClip",
    "InputReport",
    "MediaInfo",
    "decode_any",
    "decode_clip",
    "decode_in_process",
    "decode_scale",
    "decode_size",
    "decode_timeout_s",
    "input_guard",
    "may_hold",
    "probe",
    "video_end_s",
    "with_held_frames",
]
