"""The classifier's pictures: a confusion matrix (``rnnkit evaluate``) and a heat map of
attention weights over tokens (``rnnkit predict --explain``). PNGs signed by `save_figure`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..files import save_figure


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(counts: np.ndarray, classes: list[str], path: Path, what: str) -> Path:
    """Counts in each cell, shaded by the row-normalised share (recall on the diagonal)."""
    plt = _pyplot()
    C = len(classes)
    rows = counts.sum(axis=1, keepdims=True)
    share = counts / np.maximum(rows, 1)  # (C, C), each true class's row sums to 1
    size = 2.5 + 0.55 * C
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    names = [c if len(c) <= 18 else c[:17] + "…" for c in classes]
    ax.set_xticks(range(C), names, rotation=45, ha="right")
    ax.set_yticks(range(C), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if C <= 30:  # the numbers, when they fit
        for i in range(C):
            for j in range(C):
                colour = "white" if share[i, j] > 0.5 else "black"
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", color=colour)
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(f"{counts.sum():,} examples, accuracy {accuracy:.3f}")
    fig.tight_layout()
    try:
        return save_figure(fig, path, what)
    finally:
        plt.close(fig)


def plot_attention(
    tokens: list[list[str]], weights: list[np.ndarray], labels: list[str], path: Path, what: str
) -> Path:
    """One row per input: its tokens (at most 60 shown), shaded by their attention weight."""
    plt = _pyplot()
    shown = 60
    width = min(max(len(t) for t in tokens), shown)
    fig, axes = plt.subplots(
        len(tokens), 1, figsize=(max(4.0, 0.45 * width + 1), 1.1 * len(tokens))
    )
    axes = np.atleast_1d(axes)
    for ax, toks, a, label in zip(axes, tokens, weights, labels, strict=True):
        toks, a = toks[:shown], a[:shown]
        ax.imshow(a[None, :], cmap="Reds", vmin=0.0, vmax=max(float(a.max()), 1e-9), aspect="auto")
        ax.set_xticks(range(len(toks)), [t if t.strip() else "␣" for t in toks], rotation=90)
        ax.set_xlim(-0.5, width - 0.5)  # one token per cell, the same width in every row
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
    axes[0].set_title("attention weight per token (darker: more)")
    fig.tight_layout()
    try:
        return save_figure(fig, path, what)
    finally:
        plt.close(fig)
