"""Report figures: ROC curves, per-category confusion, t-SNE of the fused embeddings,
and one video's per-window fake probabilities (``predict --plot``).

Written with matplotlib's non-interactive Agg backend, so no display is needed. Texts are
drawn as written (no mathtext: a file named ``clip $x$.mp4`` keeps its dollars) and cut to
a bounded length (:mod:`schemas.picture_text`); a failed write is one line
(:mod:`schemas.output_targets`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from schemas import CATEGORIES
from schemas.output_targets import check_file_target, writing
from schemas.picture_text import LITERAL_TEXT_RC, plain
from trainer.evaluate.metrics import ClipScores, category_confusion

CATEGORY_COLOURS = {"RARV": "#2b8a3e", "FARV": "#1c7ed6", "RAFV": "#e8590c", "FAFV": "#c2255c"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    matplotlib.rcParams.update(LITERAL_TEXT_RC)  # file names may hold "$...$"
    import matplotlib.pyplot as plt

    return plt


def plot_roc(path: Path, scores: ClipScores, metrics: dict[str, Any]) -> None:
    """ROC of the fused head (overall label) and of each modality head (its own label)."""
    from sklearn.metrics import roc_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    curves = (
        ("fused", scores.label, metrics["auc"]),
        ("audio", scores.audio_label, metrics["audio_auc"]),
        ("video", scores.video_label, metrics["video_auc"]),
    )
    for head, labels, auc in curves:
        if len(np.unique(labels)) < 2:
            continue  # a curve needs both classes
        fpr, tpr, _ = roc_curve(labels, scores.prob[head])
        ax.plot(fpr, tpr, label=f"{head} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate (fake = positive)")
    ax.set_title("ROC, test clips")
    ax.legend(loc="lower right")
    fig.tight_layout()
    _save(fig, path)


def plot_confusion(path: Path, scores: ClipScores) -> None:
    """Rows: true category; columns: predicted real / fake (fused head at 0.5)."""
    plt = _pyplot()
    conf = category_confusion(scores)
    matrix = np.array([conf[c] for c in CATEGORIES], dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(CATEGORIES)):
        for j in range(2):
            ax.text(j, i, f"{int(matrix[i, j])}\n{share[i, j]:.0%}", ha="center", va="center")
    ax.set_xticks([0, 1], ["real", "fake"])
    ax.set_xlabel("predicted (fused head)")
    ax.set_yticks(range(len(CATEGORIES)), list(CATEGORIES))
    ax.set_title("Test clips per category")
    fig.tight_layout()
    _save(fig, path)


def tsne_points(embedding: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE of ``(N, D)`` embeddings → ``(N, 2)``; perplexity clamped for small N."""
    from sklearn.manifold import TSNE

    n = embedding.shape[0]
    if n < 3:
        return np.zeros((n, 2))
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(embedding.astype(np.float64))


def plot_tsne(path: Path, scores: ClipScores, seed: int = 0) -> None:
    """t-SNE of the test clips' fused embeddings coloured by category (the paper's Fig. 5)."""
    plt = _pyplot()
    points = tsne_points(scores.embedding, seed)
    cats = np.asarray(scores.categories)
    fig, ax = plt.subplots(figsize=(5, 5))
    for c in CATEGORIES:
        sel = cats == c
        if sel.any():
            ax.scatter(points[sel, 0], points[sel, 1], s=12, c=CATEGORY_COLOURS[c], label=c)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("t-SNE of fused embeddings, test clips")
    ax.legend(loc="best", markerscale=1.5)
    fig.tight_layout()
    _save(fig, path)


def _save(fig: Any, path: Path) -> None:
    """Write ``fig`` to ``path`` (120 dpi) and close it; a failed write is one line."""
    try:
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=120)
    finally:
        _pyplot().close(fig)


def plot_window_scores(
    path: Path,
    starts: np.ndarray,
    window: int,
    num_frames: int,
    prob: np.ndarray,
    *,
    fps: float,
    title: str,
) -> None:
    """Draw :func:`window_figure` into ``path`` (``--plot``: a file, checked first)."""
    check_file_target(path, "--plot")
    _save(window_figure(starts, window, num_frames, prob, fps=fps, title=title), path)


def window_figure(
    starts: np.ndarray,
    window: int,
    num_frames: int,
    prob: np.ndarray,
    *,
    fps: float,
    title: str,
) -> Any:
    """Fake probability of each head over one video's time, one step per scored window.

    ``starts (W,)`` are the windows' first frames and ``prob (W, 3)`` their audio, video and
    fused (overall) fake probabilities. A window is drawn over the seconds it covers; where
    windows overlap (``eval_stride < window``) each is drawn at its centre instead. The
    clip's score is the mean of the windows (dashed lines). The legend stands to the right
    of the axes, never over the curves; ``title`` is cut to a bounded length.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ends = np.minimum(starts + window, num_frames)
    overlap = len(starts) > 1 and bool(np.any(starts[1:] < ends[:-1]))
    heads = (("audio", "#1c7ed6"), ("video", "#e8590c"), ("overall", "#222222"))
    for k, (head, colour) in enumerate(heads):
        mean = float(prob[:, k].mean()) if len(prob) else float("nan")
        if overlap:
            centres = (starts + ends) / 2 / fps
            ax.plot(centres, prob[:, k], marker="o", ms=3, color=colour, label=head)
        else:
            # Steps: window i holds its value from its first to its last frame.
            edges = np.append(starts, ends[-1]) / fps
            values = np.append(prob[:, k], prob[-1, k])
            ax.step(edges, values, where="post", color=colour, label=head, lw=1.6)
        ax.axhline(mean, color=colour, ls="--", lw=0.8)
    ax.axhline(0.5, color="grey", ls=":", lw=0.8)
    ax.set(xlim=(0, num_frames / fps), ylim=(-0.02, 1.02), xlabel="time (s)")
    ax.set_ylabel("fake probability")
    ax.set_title(plain(title), fontsize=9)
    # Outside the axes: inside, any corner may hold a curve (probabilities span 0..1).
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        fontsize=8,
        title="dashed:\nclip mean",
        title_fontsize=7,
    )
    fig.tight_layout()
    return fig


def write_all(folder: Path, scores: ClipScores, metrics: dict[str, Any]) -> list[Path]:
    """``roc.png``, ``confusion.png`` and ``tsne.png`` in ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "roc.png", folder / "confusion.png", folder / "tsne.png"]
    plot_roc(paths[0], scores, metrics)
    plot_confusion(paths[1], scores)
    plot_tsne(paths[2], scores)
    return paths
