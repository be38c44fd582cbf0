"""The hard synthetic setting: subtler cues than the easy one, each checked by a measure."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.synth import HARD, HARD_NAME, make_dataset, plan
from pipeline.synth.audio import clip_audio, envelope, mouth_envelopes, speech
from pipeline.synth.spec import FAKE_AUDIO_FILTER, SUBTLE_AUDIO_FILTER, Voice
from pipeline.synth.video import render_video


def high_band_fraction(samples: np.ndarray) -> float:
    """Share of the energy above 3.5 kHz of 16 kHz samples ``(n,)``."""
    power = np.abs(np.fft.rfft(samples.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(samples.size, 1 / 16000)
    return float(power[freqs > 3500].sum() / power.sum())


def best_lag(mouth: np.ndarray, audio: np.ndarray, max_lag: int = 6) -> int:
    """The delay (frames) of ``mouth`` ``(T,)`` behind ``audio`` ``(T,)`` that correlates best."""
    m, a = mouth - mouth.mean(), audio - audio.mean()
    scores = [float(np.dot(m[k:], a[: a.size - k])) / (a.size - k) for k in range(max_lag + 1)]
    return int(np.argmax(scores))


@pytest.fixture(scope="module")
def planned() -> tuple[list, list]:
    _, easy = plan(per_category=6, identities=9, seed=3)
    _, hard = plan(per_category=6, identities=9, seed=3, difficulty="hard")
    return easy, hard


def test_hard_plan_keeps_the_dataset_and_sets_subtle_cues(planned: tuple[list, list]) -> None:
    easy, hard = planned
    assert [row for row, _ in easy] == [row for row, _ in hard]  # same files, same labels
    for (row, e), (_, h) in zip(easy, hard, strict=True):
        # The onset shortcut is gone: real clips start with silence like the fakes.
        assert HARD.lead_silence[0] <= h.lead_silence <= HARD.lead_silence[1]
        if row.category == "A":
            assert replace(h, lead_silence=0.0) == e
        if row.category in "BD":
            lo, hi = HARD.pitch_up if h.fake_pitch > 1 else HARD.pitch_down
            assert lo <= h.fake_pitch <= hi and h.audio_filter == SUBTLE_AUDIO_FILTER
            assert abs(np.log(h.fake_pitch)) < abs(np.log(e.fake_pitch)) / 2
        if row.category in "CD":
            start, stop = h.manip_frames
            assert HARD.manip_len[0] <= stop - start <= HARD.manip_len[1]
            assert start >= 0 and stop <= h.n_frames
            assert h.av_offset in (2, 3)
        else:
            assert h.manip_frames is None and h.av_offset == 0


def test_hard_voice_change_is_subtler() -> None:
    """Measured on the rendered speech: the band above 3.5 kHz is attenuated, not removed."""
    voice = Voice(name="slt", text="every small garden needs patience and rain", pitch=1.0)
    real = high_band_fraction(speech(voice))
    easy = high_band_fraction(speech(voice, 0.72, FAKE_AUDIO_FILTER)) / real
    hard = high_band_fraction(speech(voice, 0.92, SUBTLE_AUDIO_FILTER)) / real
    assert easy < 0.02, f"easy fake keeps {easy:.3f} of the high band"
    assert 0.1 < hard < 0.9, f"hard fake keeps {hard:.3f} of the high band"


def test_hard_video_is_manipulated_in_few_frames_and_lags_its_audio(
    planned: tuple[list, list],
) -> None:
    _, hard = planned
    spec = next(s for r, s in hard if r.category == "C" and s.swap is not None)
    spec = replace(spec, n_frames=40, manip_frames=(14, 24))
    # Lip-sync offset: the mouth track trails the clip's speech by av_offset frames.
    _, real = clip_audio(spec)
    mouth, target, sync = mouth_envelopes(spec)
    assert best_lag(mouth, envelope(real, spec.n_frames)) == spec.av_offset
    assert best_lag(sync, envelope(real, spec.n_frames)) == spec.av_offset
    assert target is mouth  # the swapped face keeps the source's mouth motion
    # Outside the manipulated frames the fake is the untouched face.
    fake = render_video(spec, mouth, target, sync)
    plain = render_video(replace(spec, swap=None, lipsync=False), mouth, target, sync)
    changed = [t for t in range(spec.n_frames) if not np.array_equal(fake[t], plain[t])]
    assert changed == list(range(14, 24))


def test_hard_dataset_records_its_cues(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="difficulty"):
        make_dataset(tmp_path / "bad", per_category=1, difficulty="medium")
    summary = make_dataset(tmp_path / "d", per_category=1, seed=2, difficulty="hard", workers=2)
    cues = json.loads((summary.root / HARD_NAME).read_text())
    assert len(cues) == 4 and summary.difficulty == "hard"
    by_kind = {Path(p).parts[0]: c for p, c in cues.items()}
    assert by_kind["RealVideo-RealAudio"]["av_offset_frames"] == 0
    assert by_kind["FakeVideo-RealAudio"]["av_offset_frames"] in (2, 3)
    assert by_kind["RealVideo-FakeAudio"]["audio_filter"] == SUBTLE_AUDIO_FILTER
    assert all((summary.root / p).stat().st_size > 0 for p in cues)
