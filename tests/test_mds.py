"""MDS by hand: its contrastive loss, the score → fake probability map, the chunking of a
window (the audio image's layout, a window shorter than a chunk, padded frames), and what
it refuses."""

from __future__ import annotations

import math

import pytest
import torch

import schemas
from trainer.config.settings import TrainerError, load_config
from trainer.data.detector_store import check_detector_store
from trainer.model import build_model
from trainer.model.mds import MDS, chunk_windows, contrastive_terms, dissonance_logits


def test_the_contrastive_loss_by_hand() -> None:
    audio = torch.zeros(4, 2)
    video = torch.tensor([[0.1, 0.0], [0.3, 0.4], [0.3, 0.4], [3.0, 4.0]])  # d = .1, .5, .5, 5
    real = torch.tensor([True, True, False, False])
    got = contrastive_terms(audio, video, real, margin=0.99)
    # real: d² (a close pair costs little, a far one more); fake: max(0, m − d)², positive
    # inside the margin and 0 beyond it.
    expected = torch.tensor([0.01, 0.25, (0.99 - 0.5) ** 2, 0.0])
    torch.testing.assert_close(got, expected)
    assert got[0] < got[1] and got[2] > 0


def test_a_larger_dissonance_is_a_higher_fake_probability() -> None:
    scores = torch.tensor([0.0, 0.3, 0.6, 0.9, 2.0])
    tau, log_sigma = torch.tensor(0.6), torch.tensor(math.log(0.1))
    fake = dissonance_logits(scores, tau, log_sigma).softmax(-1)[:, 1]
    assert bool((fake.diff() > 0).all()) and float(fake[2]) == pytest.approx(0.5)
    torch.testing.assert_close(fake, torch.sigmoid((scores - 0.6) / 0.1))
    # In the model: the fused head is that map of the MDS, the mean of the chunk distances.
    torch.manual_seed(0)
    cfg = load_config("tiny", ["model.name=mds"]).model
    model = build_model(cfg).eval()
    assert isinstance(model, MDS)
    with torch.no_grad():
        out = model(torch.randn(3, 16, 104), torch.randn(3, 3, 16, 24, 24), None)
    assert out.distance is not None and out.score is not None
    torch.testing.assert_close(out.score, out.distance.mean(dim=1))
    sigma = math.exp(float(model.log_scale.detach()))
    expected = torch.sigmoid((out.score - float(model.threshold.detach())) / sigma)
    torch.testing.assert_close(out.fused_logits.softmax(-1)[:, 1], expected)


def test_the_audio_image_is_coefficients_by_hops() -> None:
    t = 6
    audio = torch.arange(t * 104, dtype=torch.float32).view(1, t, 104)
    images, clips, chunk_mask = chunk_windows(audio, torch.zeros(1, 3, t, 4, 4), None, 5, 13)
    assert images.shape == (1, 2, 1, 13, 20) and clips.shape == (1, 2, 3, 5, 4, 4)
    assert chunk_mask.tolist() == [[True, True]]
    # Row t of the store holds hops 4t..4t+3, 26 features each: hop 4t + j, cepstrum c
    # is audio[t, 26j + c]; chunk 1 starts at frame 5 and frame 6 is zero-filled.
    assert images[0, 0, 0, 2, 4 * 3 + 1] == audio[0, 3, 26 + 2]
    assert images[0, 1, 0, 12, 3] == audio[0, 5, 3 * 26 + 12]
    assert images[0, 1, 0, :, 4:].abs().sum() == 0


def test_a_short_or_padded_clip_is_scored_as_its_real_frames_alone() -> None:
    torch.manual_seed(0)
    model = build_model(load_config("tiny", ["model.name=mds"]).model).eval()
    audio, video = torch.randn(2, 20, 104), torch.randn(2, 3, 20, 24, 24)
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 5:] = False  # 5 real frames: less than one chunk of 8
    with torch.no_grad():
        both = model(audio, video, mask)
        alone = model(audio[1:, :5], video[1:, :, :5], None)
    assert both.chunk_mask is not None and both.chunk_mask.tolist() == [
        [True] * 3,
        [True] + [False] * 2,
    ]
    for head in ("audio_logits", "video_logits", "fused_logits", "embedding"):
        torch.testing.assert_close(getattr(both, head)[1:], getattr(alone, head))


def test_mds_reads_mfcc_and_refuses_a_chunk_too_short_for_its_audio_cnn() -> None:
    cfg = load_config("tiny", ["model.name=mds"]).model
    check_detector_store(cfg, schemas.Recipe(features="mfcc"), "s", 8)
    with pytest.raises(TrainerError, match="--audio-features mfcc"):
        check_detector_store(cfg, schemas.Recipe(features="fbank"), "s", 8)
    with pytest.raises(TrainerError, match="chunk_frames must be ≥ 5") as caught:
        load_config("tiny", ["model.name=mds", "model.chunk_frames=4"])
    assert "\n" not in str(caught.value)
