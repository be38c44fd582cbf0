"""Model configuration: one dataclass; the two presets' values live in ``trainer/presets/``.

The paper fixes only the depth (6 blocks), the audio width (104) and the kinds of
layers. Everything else is a choice recorded here.

``paper`` preset (14.09 M parameters, 1.88 GFLOPs forward per 16-frame clip at 112², of
which 1.42 G in the per-frame CNN; numbers from ``benchmarks/bench_model.py``):
    C = 256, 8 heads (d_head = 32, two heads per MSSA group), MLP ratio 4, dropout 0.1,
    MSSA kernels k = (1, 3, 5, 7): k×k over (T, d_head), i.e. 1 to 7 frames = 40 to 280 ms
    at 25 fps, and as many neighbouring features of d_head.
    Visual trunk for 112×112 crops: stem conv 32 channels, stride 2 (56²) → max-pool (28²)
    → WTConv (2 levels, 5×5) → four Res2Net stages of widths (64, 128, 256, 256), 2
    Bottle2neck blocks each, strides (1, 2, 2, 2) (28², 14², 7², 4²), CBAM between stages,
    global average pool, linear to C. The trunk is far lighter than Res2Net-50 (0.6 M
    parameters) because it runs once per frame, 16-64 frames per clip.

``tiny`` preset (0.245 M parameters, 0.12 GFLOPs per 16-frame clip; one batch-8 × 16-frame
training step at 112² costs about 0.3 s of one CPU core):
    C = 64, 2 blocks, 4 heads, MLP ratio 2, stem 16 channels, Res2Net widths (16, 32, 64)
    with one block each.

Both presets read any store: the trunk pools globally, so the crop size is the store's
business and no model setting (sizes above are quoted at the default store's 112²).

The switches, each with the paper's reading as its default:
    attn_cross   "dca" | "ca"      differential or plain cross attention (Table 2)
    attn_self    "mssa" | "sa"     multi-scale or plain self attention (Table 2)
    dca_form     "paper" |         DCA as the paper's Eq. 1 reads (two soft-maxed maps,
                 "diff_transformer" their difference with weight 1, times V_A), or the
                                   Differential Transformer's form (a learned λ and a
                                   per-head RMSNorm); see
                                   :mod:`trainer.model.attention`. Configs stored
                                   before the key read as "diff_transformer"
                                   (:data:`trainer.config.settings.LEGACY_CONFIG`)
    mssa_kernel  "2d" | "time"     k×k kernels over (T, d_head), or k×1 over time only
                                   (see :class:`trainer.model.attention.MultiScaleKeys`)
    unimodal_head "mean" | "cls"   what the audio / video heads read (see
                                   :mod:`trainer.model.msct` for why "mean")
    visual_input "face" | "mouth"  the visual stream: RGB face crops, or the store's
                                   grayscale mouth crops (centre 88×88 of 96×96, a
                                   1-channel stem; :mod:`trainer.data.streams`)
    frame_head   false | true      a per-frame fake head (not in the paper): one linear
                                   layer on each time step's fused token [z_t^a ‖ z_t^v],
                                   trained with a per-frame BCE (weight ``loss.frame``)
                                   on the store's frame labels, which every training
                                   clip must then have; off, the model and its
                                   parameters are exactly the paper's MSCT
The loss's ``alignment`` switch lives in :class:`trainer.model.loss.LossWeights`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from trainer.presets import PRESETS, read_preset

CROSS_ATTENTIONS: tuple[str, ...] = ("dca", "ca")
SELF_ATTENTIONS: tuple[str, ...] = ("mssa", "sa")
DCA_FORMS: tuple[str, ...] = ("paper", "diff_transformer")
MSSA_KERNELS: tuple[str, ...] = ("2d", "time")
UNIMODAL_HEADS: tuple[str, ...] = ("mean", "cls")
#: The visual stream the model reads and the channels of its frames: RGB face crops
#: (the store's ``video``) or grayscale mouth crops (its ``mouth``, see ``trainer.data.streams``).
VISUAL_INPUTS: dict[str, int] = {"face": 3, "mouth": 1}


class ConfigBasics:
    """What every detector's config dataclass shares (a mixin with no fields of its own)."""

    name: str
    visual_input: str
    frame_head: bool

    def check_visual_input(self, *, frame_head_allowed: bool = False) -> None:
        """Refuse an unknown visual stream, and a frame head where the detector has none."""
        if self.visual_input not in VISUAL_INPUTS:
            raise ValueError(
                f"visual_input must be one of {tuple(VISUAL_INPUTS)}, got {self.visual_input!r}"
            )
        if self.frame_head and not frame_head_allowed:
            raise ValueError(f"model.name={self.name} has no frame head (only msct does)")

    @property
    def visual_channels(self) -> int:
        """Channels of a frame of the visual input: 3 (RGB face) or 1 (grayscale mouth)."""
        return VISUAL_INPUTS[self.visual_input]

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON/YAML-serialisable mapping (tuples become lists)."""
        data = asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


@dataclass
class ModelConfig(ConfigBasics):
    """Hyper-parameters of :class:`trainer.model.MSCT`.

    Constructible from a plain dict (``ModelConfig(**d)`` or :meth:`from_dict`); tuples may
    arrive as lists from YAML/JSON and are converted.
    """

    dim: int  # C, token width of both modalities
    depth: int  # number of transformer blocks (paper: 6)
    heads: int  # attention heads; divisible by 4 (the four MSSA head groups)
    mlp_ratio: float  # feed-forward hidden width = mlp_ratio · C
    dropout: float  # on embeddings, attention outputs and the feed-forward layer
    attn_cross: str  # "dca" (paper) | "ca" (ablation: plain cross attention)
    attn_self: str  # "mssa" (paper) | "sa" (ablation: plain self attention)
    mssa_kernels: tuple[int, int, int, int]  # kernel size k_i of each MSSA head group
    mssa_kernel: str = "2d"  # "2d" (paper): k×k over (T, d_head) | "time": k×1, time only
    dca_form: str = "paper"  # "paper": Eq. 1 as written | "diff_transformer": λ and head norm
    unimodal_head: str = "mean"  # audio / video heads read: "mean" of [z1 … zT] | "cls"
    audio_channels: int = 104
    max_frames: int = 512  # longest window the position table supports
    visual_stem: int = 32  # channels of the stem convolution (and of WTConv)
    visual_widths: tuple[int, ...] = (64, 128, 256, 256)  # output channels per Res2Net stage
    visual_depths: tuple[int, ...] = (2, 2, 2, 2)  # Bottle2neck blocks per stage
    wt_levels: int = 2  # Haar decomposition levels of WTConv
    wt_kernel: int = 5  # depthwise kernel applied to every sub-band of every level
    visual_input: str = "face"  # "face": RGB face crops | "mouth": grayscale mouth crops
    frame_head: bool = False  # a per-frame fake head on the fused tokens (see above)
    name: str = "msct"  # the registered detector (:mod:`trainer.model.registry`)

    PRESETS: ClassVar[tuple[str, ...]] = PRESETS

    def __post_init__(self) -> None:
        self.mssa_kernels = tuple(int(k) for k in self.mssa_kernels)  # type: ignore[assignment]
        self.visual_widths = tuple(int(w) for w in self.visual_widths)
        self.visual_depths = tuple(int(d) for d in self.visual_depths)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` with a one-line reason if the combination cannot be built."""
        if self.name != "msct":
            raise ValueError(f"ModelConfig is MSCT's: its name is 'msct', not {self.name!r}")
        if self.attn_cross not in CROSS_ATTENTIONS:
            raise ValueError(
                f"attn_cross must be one of {CROSS_ATTENTIONS}, got {self.attn_cross!r}"
            )
        if self.attn_self not in SELF_ATTENTIONS:
            raise ValueError(f"attn_self must be one of {SELF_ATTENTIONS}, got {self.attn_self!r}")
        if self.dca_form not in DCA_FORMS:
            raise ValueError(f"dca_form must be one of {DCA_FORMS}, got {self.dca_form!r}")
        if self.mssa_kernel not in MSSA_KERNELS:
            raise ValueError(f"mssa_kernel must be one of {MSSA_KERNELS}, got {self.mssa_kernel!r}")
        self.check_visual_input(frame_head_allowed=True)
        if self.unimodal_head not in UNIMODAL_HEADS:
            raise ValueError(
                f"unimodal_head must be one of {UNIMODAL_HEADS}, got {self.unimodal_head!r}"
            )
        if self.heads <= 0 or self.heads % 4:
            raise ValueError(
                f"heads must be a positive multiple of 4 (MSSA groups), got {self.heads}"
            )
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        if len(self.mssa_kernels) != 4 or any(k < 1 or k % 2 == 0 for k in self.mssa_kernels):
            raise ValueError(f"mssa_kernels must be four odd sizes ≥ 1, got {self.mssa_kernels}")
        if self.depth < 1 or self.max_frames < 1:
            raise ValueError("depth and max_frames must be ≥ 1")
        if not self.visual_widths or len(self.visual_widths) != len(self.visual_depths):
            raise ValueError(
                "visual_widths and visual_depths must be non-empty and of equal length"
            )
        if any(w % 8 for w in self.visual_widths):
            # Bottle2neck's inner width is out/2, split four ways.
            raise ValueError(f"visual_widths must be multiples of 8, got {self.visual_widths}")
        if any(d < 1 for d in self.visual_depths) or self.wt_levels < 1 or self.wt_kernel % 2 == 0:
            raise ValueError("visual_depths and wt_levels must be ≥ 1 and wt_kernel odd")

    @classmethod
    def preset(cls, name: str) -> ModelConfig:
        """The model section of the training preset ``name`` (``trainer/presets/<name>.yaml``)."""
        return cls.from_dict(read_preset(name)["model"])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a plain mapping; unknown keys are an error, not silently dropped."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**data)
