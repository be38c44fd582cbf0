"""A synthetic FakeAVCeleb: real mp4 media in the exact v1.2 tree and ``meta_data.csv``.

``make_dataset(OUT)`` writes ``OUT/FakeAVCeleb_v1.2/<type>/<race>/<gender>/<idNNNNN>/<file>.mp4``
and ``OUT/FakeAVCeleb_v1.2/meta_data.csv`` (the tree of :mod:`pipeline.datasets.fakeavceleb_tree`).
Clips are H.264 + AAC, 224×224, 25 fps, 2.2-3.8 s, 16 kHz mono audio, showing the
face of ``skimage.data.astronaut()`` and speech from ffmpeg's ``flite`` source.

Where each job lives:

- :mod:`~pipeline.synth.plan`: all random choices (identities, clips, categories,
  the hard setting's cues), from one seeded generator;
- :mod:`~pipeline.synth.spec`: :class:`ClipSpec`, everything one clip is made from;
- :mod:`~pipeline.synth.audio` and :mod:`~pipeline.synth.video`: the speech and
  the face / mouth drawing of a clip, pure functions of its spec;
- :mod:`~pipeline.synth.encode`: the deterministic ffmpeg encodes;
- :mod:`~pipeline.synth.defects`: the ``with_defects`` corpus;
- :mod:`~pipeline.synth.files`: one spec onto disk, in a worker process;
- :mod:`~pipeline.synth.writer`: :func:`make_dataset`, the tree, the CSV, the side files.

Choices, and why:

- Identities. ``identities`` defaults to ``per_category``, which gives every identity
  exactly one clip of each category. Real clips are one per identity as in the
  release, so ``per_category`` cannot exceed ``identities`` (refused with a
  ``ValueError`` that says so). The first ``per_category`` identities are the
  sources of all clips (A, B, C, D); fakes live in the folder of their *source*
  identity. Extra identities (``identities > per_category``) have no clips of their
  own and serve only as swap / voice donors. ``target1`` of a C or D clip is
  another identity (the swapped-in face, or the donor in the file name) and, for
  the two-stage methods (``fsgan-wav2lip``, ``faceswap-wav2lip``), ``target2`` a
  third one when there are enough identities. With a single identity the target
  is a donor that has no clips of its own.
- Targets within race × gender (``hard``). In the real FakeAVCeleb v1.2 a fake's
  targets always come from its source's own race × gender group: over the release's
  21,544 files the graph of source-target references has exactly 10 components of
  50 identities, so ``split --strict-identities`` gives a split by group. The
  ``hard`` setting draws targets the same way (from a generator of its own,
  ``[seed, 5]``; a source alone in its group gets the donor), so its graph has no
  component spanning two groups and, with 4 or more groups, ``split
  --strict-identities`` succeeds. ``easy`` and ``hard-partial`` draw targets from
  all identities, as they always did, so that their output for a seed never changes.
- Looks and voices. Every identity gets its own colour grade, mirror, size and
  position of the same face (the face stays 90-110 px wide, which dlib's HOG
  frontal detector finds reliably), and its own flite voice, pitch and sentence.
  Gender is a label only; men speak with ``awb``, ``rms`` or ``kal16``, women with
  ``slt``.
- Motion. The head drifts smoothly (a few pixels, a few per cent of scale) so that
  face tracking has something to do; the mouth region stretches vertically with
  the loudness of the speech of each frame.
- Real video (A, B): the mouth follows the clip's real speech.
- Fake video (C, D), a visible manipulation of the face region in every method:
  ``faceswap`` / ``fsgan`` paste the target identity's face (its colour grade, a
  skin-tone mismatch, blurred as a face generated at low resolution; fsgan
  blurrier) with a feathered elliptical seam, and its mouth moves with the
  *target's* speech, i.e. out of sync with the clip's audio; ``wav2lip`` regenerates
  the lower face at low resolution with the mouth in sync with the clip's audio
  (for ``*-wav2lip`` on top of the swapped face). The face region's fine detail
  (e.g. Laplacian variance around the mouth) is therefore much lower than in the
  same identity's real clips; the rest of the frame is untouched.
- Fake audio (B, D), ``rtvc`` style voice conversion: the same sentence by the same
  voice, pitch-shifted by 0.68-0.78 or 1.30-1.45 (tempo kept, so the timing and
  thus the lip sync of a real mouth is unchanged) and band-limited to about 2.8 kHz
  like a low-rate vocoder; the energy above 3.5 kHz drops by orders of magnitude.
- Leading silence. Like the release, every fake clip (B, C, D) starts with 0.1-0.3 s
  of silence and real clips (A) do not. It delays the speech and the real mouth
  together, so it is a pure onset shortcut (ingest's ``--trim-silence`` removes it).
- Difficulty. ``difficulty="easy"`` (the default) is everything above; its output
  never changes for a given seed. ``"hard"`` keeps the tree and labels but makes
  every cue subtle, so that a model has to learn them (see ``HARD``): real clips
  get leading silence from the same 0.1-0.3 s range as the fakes, so the onset
  says nothing in any category; the voice conversion shifts the pitch by only
  6-10 % and band-limits gently (``SUBTLE_AUDIO_FILTER``: the band above 3.5 kHz
  keeps about a third of its energy instead of losing orders of magnitude),
  throughout the clip; a fake video is manipulated in every frame, as
  FakeAVCeleb's faceswap, fsgan and wav2lip clips are: the swapped face /
  regenerated mouth is less blurred and closer in skin tone than in ``easy``
  (the blending seam stays), a swapped face keeps the source's mouth motion, and
  the whole mouth track lags the audio by 1-3 frames (lip-sync offset). A fake
  also takes its source's real clip's length and leading silence (``shared_timeline``;
  it is made from that recording), so that neither can separate the classes by chance.
  ``"hard-partial"`` (``HARD_PARTIAL``) is the hard setting as first made, kept
  so that results measured on it can be reproduced (before this name existed it
  was called ``"hard"``): the same cues, but the face / mouth is pasted in 8-12
  consecutive frames only, the lag is 2-3 frames and every clip draws its own
  length and leading silence. Partial fakes trained with
  the clip's label leave most windows of a "fake" clip untouched; they belong
  with frame labels (the ``lavdf`` / ``avdeepfake1m`` formats and
  ``model.frame_head``). Both hard settings draw their cues from a second
  generator (``[seed, 4]``) and write them, per clip, to ``hard.json`` beside
  ``meta_data.csv`` (``manip_frames``: the manipulated ``[start, stop)``, the
  whole clip for a whole-clip fake).
- Determinism. The plan depends only on the arguments; workers render pure
  functions of their clip spec; libx264 runs single-threaded with bitexact flags.
  Same seed → same CSV and same decoded frames and samples (bytes are not promised).
- Refusal. ``OUT`` must not exist or be an empty directory; the dataset is built in
  a hidden folder inside ``OUT`` and renamed into place when complete, so a failed
  run leaves no half dataset that looks finished.
- Defects (``with_defects``): one identity folder per broken file, ids ``id90001``
  and up, all under ``RealVideo-RealAudio``. ``SynthSummary.defects`` and
  ``defects.json`` map each path, relative to the dataset root, to its kind; see
  ``DEFECT_KINDS`` and :mod:`pipeline.synth.defects`.
"""

from pipeline.synth.defects import DEFECT_KINDS, PLAYLISTS, plan_defects
from pipeline.synth.plan import (
    DIFFICULTIES,
    HARD,
    HARD_PARTIAL,
    HARD_SETTINGS,
    METHODS,
    HardSetting,
    plan,
)
from pipeline.synth.segmented_writer import FORMATS, SegmentedSummary, make_segmented
from pipeline.synth.spec import ClipSpec
from pipeline.synth.writer import DEFECTS_NAME, HARD_NAME, SynthSummary, make_dataset

__all__ = [
    "DEFECTS_NAME",
    "DEFECT_KINDS",
    "DIFFICULTIES",
    "FORMATS",
    "HARD",
    "HARD_NAME",
    "HARD_PARTIAL",
    "HARD_SETTINGS",
    "METHODS",
    "PLAYLISTS",
    "ClipSpec",
    "HardSetting",
    "SegmentedSummary",
    "SynthSummary",
    "make_dataset",
    "make_segmented",
    "plan",
    "plan_defects",
]
