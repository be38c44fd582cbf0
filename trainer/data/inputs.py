"""From collated window batches to the model's inputs, on the device that runs the model.

Items leave the DataLoader with the visual streams as stored, uint8: face crops
``(B, T, S, S, 3)`` (key ``"video"``) and/or mouth crops ``(B, T, 88, 88)`` (key
``"mouth"``, :mod:`trainer.data.streams`), of which the model reads one, and
each training window's drawn shift/flip. The float, channel-first,
normalised tensor the model takes is made here, after the copy to the device:
a quarter of the bytes cross the bus (and the workers' shared memory), and the
rearrangement and arithmetic run where they are cheapest.

Video normalisation: frames are scaled to ``[0, 1]`` and then normalised per RGB
channel with the ImageNet statistics :data:`VIDEO_MEAN` / :data:`VIDEO_STD` (the
visual pre-encoder is a ResNet-family CNN, where these are the customary input
statistics). Grayscale mouth crops are normalised with AV-HuBERT's statistics,
:data:`MOUTH_MEAN` / :data:`MOUTH_STD`, into a single channel. Padding frames after the end of a short clip are exactly 0 after
normalisation, as the mask says they are absent.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from trainer.data.augment import shift_flip
from trainer.data.streams import STREAM_ARRAYS

VIDEO_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
VIDEO_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
MOUTH_MEAN: tuple[float] = (0.421,)  # AV-HuBERT's grayscale mouth statistics
MOUTH_STD: tuple[float] = (0.165,)


@functools.cache
def _affine(device: torch.device, channels: int = 3) -> tuple[Tensor, Tensor]:
    """``(x / 255 - mean) / std = x * scale + bias``: ``scale``, ``bias`` ``(1, K, 1, 1, 1)``
    for ``K = channels`` (3: RGB face statistics, 1: grayscale mouth statistics).

    Made once per device: building them from Python lists copies host memory to the
    device, which on a GPU waits for the queued work, every batch.
    """
    mean, std = (VIDEO_MEAN, VIDEO_STD) if channels == 3 else (MOUTH_MEAN, MOUTH_STD)
    std_t = torch.tensor(std)
    scale = 1.0 / (255.0 * std_t)
    bias = -torch.tensor(mean) / std_t
    shape = (1, channels, 1, 1, 1)
    return scale.view(shape).to(device), bias.view(shape).to(device)


def video_for_model(video: Tensor, mask: Tensor | None, params: Tensor | None = None) -> Tensor:
    """The model's video input from stored frames.

    Args:
        video: ``(B, T, S, S, 3)`` uint8 face windows or ``(B, T, S, S)`` grayscale
            mouth windows, zero-padded after a short clip's end.
        mask: ``(B, T)`` bool, True = real frame, or None when all frames are real.
        params: ``(B, 3)`` ``(dy, dx, flip)`` per window (see :mod:`trainer.data.augment`),
            or None.

    Returns:
        ``(B, K, T, S, S)`` float32 on ``video``'s device (``K`` = 3 for faces, 1 for
        mouths): ``(x / 255 - mean) / std`` per channel, 0 on padding frames.
    """
    if video.dim() == 4:  # grayscale: one channel, last as for RGB
        video = video.unsqueeze(-1)
    frames = shift_flip(video, params, torch.float32)  # (B, K, T, S, S), a new tensor
    scale, bias = _affine(frames.device, frames.shape[1])
    frames.mul_(scale).add_(bias)
    if mask is None:
        return frames
    return frames.mul_(mask[:, None, :, None, None].to(frames.dtype))


def model_inputs(
    batch: dict[str, Tensor], device: torch.device, visual_input: str | None = None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(audio, video, mask)`` of a collated batch, on ``device``, ready for ``MSCT``
    and ``msct_loss``.

    ``visual_input`` (``face`` or ``mouth``) picks the batch's stream the model reads,
    ``"video"`` or ``"mouth"`` (:data:`trainer.data.streams.STREAM_ARRAYS`); None: the batch's
    only one. A mouth stream is already cut at its shift, so only the flip of
    ``shift_flip`` applies to it.

    Returns:
        ``audio (B, T, 104)`` float32, ``video (B, K, T, S, S)`` float32 and
        ``mask (B, T)`` bool, or None when every frame of the batch is real (the usual
        training batch): the model then skips masking, which on a GPU would wait for
        the device to count the kept frames. The copies are non-blocking (pinned
        batches overlap with compute).
    """
    all_real = bool(batch["mask"].all())  # read on the host: no device sync
    mask = None if all_real else batch["mask"].to(device, non_blocking=True)
    audio = batch["audio"].to(device, non_blocking=True)
    key = _stream_key(batch, visual_input)
    video = batch[key].to(device, non_blocking=True)
    params = batch.get("shift_flip")
    if params is not None:
        if key == "mouth" and "video" in batch:
            params = params * torch.tensor([0, 0, 1])  # the face's shift; the mouth's is cut
        params = params.to(device, non_blocking=True)
    return audio, video_for_model(video, mask, params), mask


def _stream_key(batch: dict[str, Tensor], visual_input: str | None) -> str:
    if visual_input is not None:
        return STREAM_ARRAYS[visual_input]
    present = [key for key in STREAM_ARRAYS.values() if key in batch]
    if len(present) != 1:
        raise ValueError(f"the batch holds the streams {present}: name the model's visual_input")
    return present[0]
