"""The argument pieces every ffmpeg and ffprobe run shares: how the input is named and opened.

An input is named by the ``file:`` URL of its absolute path (:func:`ffmpeg_url`), so
that a name such as ``-i.mp4`` or ``a:b.mp4`` can never be read as an option or a
protocol, and opened with :func:`input_guard`, which admits only the ``file``
protocol and only the demuxer its suffix promises (:mod:`schemas.containers`: the
mov/mp4 demuxer ``mov,mp4,m4a,3gp,3g2,mj2`` for ``.mp4 .m4v .mov``, ``matroska,webm``
for ``.mkv .webm``, ``avi`` for ``.avi``). A playlist or script named like a video
(HLS, ``concat``, ``ffconcat``) could otherwise make ffmpeg open files outside the
dataset root or URLs; the whitelist refuses it after ffmpeg has looked at the
file's first bytes and before any other file is opened. MKV and WebM files renamed
``.mp4`` are refused the same way: a file named ``.mp4`` must be an mp4. Another
suffix is refused before ffmpeg starts. The mov demuxer's external data references
stay off (ffmpeg's default), so an mp4 cannot name another file either.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import ClipError
from schemas.containers import MP4, Container, accepted_list, container_of, suffix_of

#: The mov demuxer's name (mp4, m4a, 3gp, 3g2, mj2, QuickTime): the one the
#: in-process decoder takes.
MP4_DEMUXER = MP4.demuxers
# Gaps in the audio timestamps above this many seconds are filled with silence (and
# overlaps trimmed); smaller ones are timestamp jitter. Well under one 40 ms frame.
AUDIO_SYNC_MIN_S = 0.01
#: Audio filter that puts the samples on the container's timeline (see
#: :mod:`pipeline.media.decode`).
AUDIO_TIMELINE = f"aresample=async=1:min_hard_comp={AUDIO_SYNC_MIN_S}:first_pts=0"


def source_container(path: Path | str) -> Container:
    """The container family a source of this name must be; :class:`ClipError` for
    a suffix no demuxer is tied to (nothing is started for it)."""
    found = container_of(path)
    if found is None:
        shown = suffix_of(path) or "no suffix"
        raise ClipError(
            f"cannot decode: unsupported container ({shown}); accepted: {accepted_list()}"
        )
    return found


def input_guard(path: Path | str) -> tuple[str, ...]:
    """Input options of an ffmpeg / ffprobe run on ``path``: local files only, and only
    the demuxer its suffix promises (:func:`source_container`)."""
    demuxers = source_container(path).demuxers
    return ("-protocol_whitelist", "file", "-format_whitelist", demuxers)


def open_options(path: Path | str) -> dict[str, str]:
    """The same two whitelists as demuxer options, for an in-process (PyAV) open."""
    return {"format_whitelist": source_container(path).demuxers, "protocol_whitelist": "file"}


def ffmpeg_url(path: Path) -> str:
    """``file:`` URL of the absolute path: never parsed as an option or another protocol."""
    return "file:" + str(Path(path).absolute())
