"""Face detection on a stride, box tracking and cropping, with the real dlib detector."""

from __future__ import annotations

import numpy as np
import pytest
from media_fixtures import SPEED, face_centre, face_frames

from pipeline.clip import faces

NUM_FRAMES = 40


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return face_frames(NUM_FRAMES)


def _track(frames: np.ndarray, stride: int) -> tuple[faces.StrideDetector, np.ndarray]:
    detector = faces.StrideDetector(stride=stride, factor=faces.detection_factor(224, 224))
    for t, frame in enumerate(frames):
        detector(t, frame)
    detector.finish(len(frames) - 1, frames[-1])
    return detector, detector.track(len(frames))


def test_boxes_follow_the_moving_face(frames: np.ndarray) -> None:
    detector, boxes = _track(frames, stride=1)
    assert detector.calls == NUM_FRAMES and detector.detection_rate == 1.0
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)
    truth = np.array([face_centre(t) for t in range(NUM_FRAMES)])
    # dlib's box is not centred on the same point as the reference detection, but it is
    # offset by the same amount in every frame: the motion must match.
    offset = np.median(centres - truth, axis=0)
    assert np.abs(offset).max() < 12
    assert np.abs(centres - truth - offset).max() < 8  # HOG boxes move in steps of ~6 px
    velocity = np.polyfit(np.arange(NUM_FRAMES), centres[:, 0], 1)[0]
    assert velocity == pytest.approx(-SPEED, abs=0.25)


def test_stride_gives_nearly_the_same_boxes(frames: np.ndarray) -> None:
    _, every = _track(frames, stride=1)
    detector, strided = _track(frames, stride=5)
    assert detector.calls == NUM_FRAMES // 5 + 1  # and the last frame
    # Within a tenth of the face's width (~110 px), in position and in size.
    centre_gap = np.abs((every[:, :2] + every[:, 2:]) - (strided[:, :2] + strided[:, 2:])) / 2
    size_gap = np.abs((every[:, 2:] - every[:, :2]) - (strided[:, 2:] - strided[:, :2]))
    assert centre_gap.max() < 11 and size_gap.max() < 11
    assert centre_gap.mean() < 5


def test_the_detector_fires_on_the_crops(frames: np.ndarray) -> None:
    _, boxes = _track(frames, stride=5)
    crops = faces.crop_faces(frames, boxes, 112)
    assert crops.shape == (NUM_FRAMES, 112, 112, 3) and crops.dtype == np.uint8
    detector = faces.face_detector()
    for crop in crops[::8]:
        (rect,) = detector(crop, 1)  # the crop is ~1.3 face widths: one big face
        assert rect.right() - rect.left() > 60
        centre = ((rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2)
        assert np.hypot(centre[0] - 56, centre[1] - 56) < 10


def test_no_face_means_zero_rate() -> None:
    blank = np.full((10, 224, 224, 3), 128, np.uint8)
    detector = faces.StrideDetector(stride=2)
    for t, frame in enumerate(blank):
        detector(t, frame)
    assert (detector.calls, detector.hits, detector.detection_rate) == (5, 0, 0.0)
    with pytest.raises(ValueError):
        detector.track(10)


def test_detection_on_a_downscaled_large_frame(frames: np.ndarray) -> None:
    big = np.repeat(np.repeat(frames[0], 3, axis=0), 3, axis=1)  # 672 x 672
    factor = faces.detection_factor(*big.shape[:2])
    assert factor == 3 and faces.detection_gray(big, factor).shape == (224, 224)
    detector = faces.StrideDetector(stride=1, factor=factor)
    detector(0, big)
    automatic = faces.StrideDetector(stride=1)  # the factor follows the first frame
    automatic(0, big)
    assert automatic.factor == 3
    np.testing.assert_allclose(automatic.track(1), detector.track(1))
    _, small = _track(frames[:1], stride=1)
    np.testing.assert_allclose(detector.track(1)[0], small[0] * 3, atol=12)


def test_interpolation_is_linear_and_holds_at_the_ends() -> None:
    boxes = np.array([[0.0, 0, 10, 10], [10, 20, 30, 40]])
    out = faces.interpolate_boxes(np.array([2, 6]), boxes, 9)
    np.testing.assert_allclose(out[0], boxes[0])
    np.testing.assert_allclose(out[4], (boxes[0] + boxes[1]) / 2)
    np.testing.assert_allclose(out[8], boxes[1])


def test_smoothing_keeps_linear_motion_and_averages_jitter() -> None:
    line = np.outer(np.arange(20.0), [1, 2, 3, 4])
    np.testing.assert_allclose(faces.smooth_boxes(line, 5)[2:-2], line[2:-2])
    jitter = np.zeros((20, 4))
    jitter[::2] = 5.0
    assert np.ptp(faces.smooth_boxes(jitter, 5)[2:-2]) < np.ptp(jitter)
    assert faces.smooth_boxes(jitter, 5).shape == (20, 4)


def test_select_face_follows_the_tracked_face() -> None:
    small, large = [100.0, 100, 150, 150], [0.0, 0, 90, 90]
    candidates = np.array([large, small])
    assert list(faces.select_face(candidates, None)) == large
    assert list(faces.select_face(candidates, np.array([102.0, 98, 152, 148]))) == small


def test_crops_that_leave_the_frame_are_padded_black() -> None:
    frames = np.full((2, 100, 100, 3), 200, np.uint8)
    boxes = np.array([[-20.0, -20, 20, 20], [40, 40, 60, 60]])
    crops = faces.crop_faces(frames, boxes, 32, margin=0.0)
    assert crops.shape == (2, 32, 32, 3)
    assert crops[0, :8, :8].max() == 0 and crops[0, -8:, -8:].min() == 200
    assert crops[1].min() == 200


def test_track_windows_are_parameters(frames: np.ndarray) -> None:
    detector, boxes = _track(frames, stride=5)
    default = detector.track(NUM_FRAMES, faces.DEFAULT_SMOOTH, faces.SIZE_SMOOTH)
    assert np.array_equal(default, boxes)

    def centres_and_sizes(track: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return track[:, :2] + track[:, 2:], track[:, 2:] - track[:, :2]

    # Another size window changes the sizes only; another centre window the centres only.
    centres, sizes = centres_and_sizes(boxes)
    resized = centres_and_sizes(detector.track(NUM_FRAMES, size_smooth=1))
    np.testing.assert_allclose(resized[0], centres)
    assert not np.allclose(resized[1], sizes)
    recentred = centres_and_sizes(detector.track(NUM_FRAMES, smooth=21, size_smooth=21))
    np.testing.assert_allclose(
        recentred[1], centres_and_sizes(detector.track(NUM_FRAMES, 5, 21))[1]
    )
    assert not np.allclose(recentred[0], centres)


def test_margin_sets_the_square_side() -> None:
    boxes = np.array([[10.0, 20, 110, 100]])  # 100 wide, 80 high: the side follows the width
    assert faces.square_regions(boxes)[0, 2] == 130  # the default margin, 0.3
    assert faces.square_regions(boxes, margin=0.5)[0, 2] == 150
