"""Figures: a disorder profile per protein, and ROC / precision-recall curves (the ``[plots]`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import InputError, require
from .regions import runs


def _pyplot():
    matplotlib = require("matplotlib", "plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def profile_figure(rid: str, scores: np.ndarray, threshold: float, regions: Sequence[tuple[int, int]],
                   labels: np.ndarray | None = None, width: float = 10.0):
    """A matplotlib figure: score line, threshold, predicted regions shaded, true labels if given."""
    plt = _pyplot()
    n = len(scores)
    fig, ax = plt.subplots(figsize=(width, 3.6 if labels is None else 4.0))
    x = np.arange(1, n + 1)
    for s, e in regions:
        ax.axvspan(s - 0.5, e + 0.5, color="tab:orange", alpha=0.2, lw=0)
    ax.plot(x, scores, color="tab:blue", lw=1.2, label="disorder score")
    ax.axhline(threshold, color="gray", ls="--", lw=0.8, label=f"threshold {threshold:.2f}")
    if labels is not None:
        lab = np.asarray(labels)
        starts, ends = runs(lab == 1)
        for s, e in zip(starts, ends):
            ax.plot([s + 0.5, e + 0.5], [-0.06, -0.06], color="black", lw=4, solid_capstyle="butt")
        ax.plot([], [], color="black", lw=4, label="annotated disorder")
    ax.set_xlim(0.5, n + 0.5)
    ax.set_ylim(-0.1 if labels is not None else 0, 1.02)
    ax.set_xlabel("residue")
    ax.set_ylabel("disorder score")
    ax.set_title(f"{rid} ({n} residues, {len(regions)} disordered region{'s' if len(regions) != 1 else ''})")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8, frameon=False, ncol=3)
    fig.tight_layout()
    return fig


def save_figure(fig, path: str | Path) -> Path:
    """Save a figure as PNG or SVG (by the file extension), atomically."""
    from .io.files import atomic_path

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise InputError(f"{path}: figures are written as .png or .svg")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=120)
    _pyplot().close(fig)
    return path


def curves_figure(named: dict[str, tuple[list[np.ndarray], list[np.ndarray]]]):
    """ROC and precision-recall curves of several predictions (name -> (labels, scores)) on one reference."""
    from .metrics import curve_counts, pool

    plt = _pyplot()
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(10, 4.5))
    for name, (labels, scores) in named.items():
        tp, fp, m = curve_counts(pool(labels, scores))
        pos, neg = tp[-1], fp[-1]
        roc.plot(np.r_[0, fp / neg], np.r_[0, tp / pos], label=f"{name} (AUC {m['auc']:.3f})")
        pr.plot(tp / pos, tp / np.maximum(tp + fp, 1), label=f"{name} (AP {m['ap']:.3f})")
    roc.plot([0, 1], [0, 1], color="gray", ls=":", lw=0.8)
    roc.set_xlabel("false positive rate")
    roc.set_ylabel("true positive rate")
    roc.set_title("ROC")
    pr.set_xlabel("recall")
    pr.set_ylabel("precision")
    pr.set_title("precision-recall")
    for ax in (roc, pr):
        ax.legend(fontsize=8, loc="lower right" if ax is roc else "lower left")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
    fig.tight_layout()
    return fig


def proteome_figure(summary, title: str = ""):
    """Histograms of the fraction of each protein called disordered and of the regions' lengths."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    fractions = np.asarray(summary.fractions)
    left.hist(fractions, bins=np.linspace(0, 1, 21), color="steelblue", edgecolor="white")
    left.set_xlabel("fraction of residues called disordered")
    left.set_ylabel("proteins")
    left.set_title(f"{fractions.size} proteins, median {np.median(fractions) if fractions.size else 0:.2f}")
    lengths = np.asarray(summary.region_lengths)
    lengths = lengths[lengths > 0]
    if lengths.size:
        bins = np.unique(np.logspace(0, np.log10(max(lengths.max(), 2)) + 0.01, 30).astype(int))
        right.hist(lengths, bins=bins, color="darkorange", edgecolor="white")
        right.set_xscale("log")
    what = "longest region of each protein" if summary.longest_only else "region length"
    right.set_xlabel(f"{what} (residues)")
    right.set_ylabel("proteins" if summary.longest_only else "regions")
    right.set_title(f"{lengths.size} {'proteins with a region' if summary.longest_only else 'regions'}")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
