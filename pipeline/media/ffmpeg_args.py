"""The argument pieces every ffmpeg and ffprobe run shares: how the input is named and opened.

An input is named by the ``file:`` URL of its absolute path (:func:`ffmpeg_url`), so
that a name such as ``-i.mp4`` or ``a:b.mp4`` can never be read as an option or a
protocol, and opened with :data:`INPUT_GUARD`, which admits only the mp4 family's
demuxer (``mov,mp4,m4a,3gp,3g2,mj2``) and only the ``file`` protocol. A playlist or
script named ``.mp4`` (HLS, ``concat``, ``ffconcat``) could otherwise make ffmpeg open
files outside the dataset root or URLs; the whitelist refuses it after ffmpeg has
looked at the file's first bytes and before any other file is opened. MKV and WebM
files renamed ``.mp4`` are refused the same way: a file named ``.mp4`` must be an mp4.
The mov demuxer's external data references stay off (ffmpeg's default), so an mp4
cannot name another file either.
"""

from __future__ import annotations

from pathlib import Path

#: The demuxer names ffmpeg may use for a source: the mov demuxer (mp4, m4a, 3gp,
#: 3g2, mj2, QuickTime) and nothing else.
MP4_DEMUXER = "mov,mp4,m4a,3gp,3g2,mj2"
#: Input options of every ffmpeg / ffprobe run: the mp4 demuxer only, local files only.
INPUT_GUARD = ("-protocol_whitelist", "file", "-format_whitelist", MP4_DEMUXER)
# Gaps in the audio timestamps above this many seconds are filled with silence (and
# overlaps trimmed); smaller ones are timestamp jitter. Well under one 40 ms frame.
AUDIO_SYNC_MIN_S = 0.01
#: Audio filter that puts the samples on the container's timeline (see
#: :mod:`pipeline.media.decode`).
AUDIO_TIMELINE = f"aresample=async=1:min_hard_comp={AUDIO_SYNC_MIN_S}:first_pts=0"


def ffmpeg_url(path: Path) -> str:
    """``file:`` URL of the absolute path: never parsed as an option or another protocol."""
    return "file:" + str(Path(path).absolute())
