"""Figures of the book. Every function returns a Matplotlib figure (and
never shows it), so a notebook displays it by ending a cell with it."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from genai_course.train import History


def _as_grey_or_rgb(images) -> np.ndarray:
    """Images as floats in [0, 1], shape (N, H, W) or (N, H, W, 3)."""
    array = (
        images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    )
    shape = tuple(array.shape)
    if array.ndim == 2 and shape[1] == 784:
        array = array.reshape(-1, 28, 28)  # (N, 784) -> (N, 28, 28)
    elif array.ndim == 4 and shape[1] in (1, 3):
        array = array.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
        if shape[1] == 1:
            array = array[..., 0]  # (N, H, W)
    elif array.ndim != 3:
        raise ValueError(
            "images must have shape (N, 28, 28), (N, 784) or (N, C, H, W) with C = 1 or 3; "
            f"got {shape}"
        )
    if len(array) == 0:
        raise ValueError("images is empty: there is nothing to show")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255
    if not np.issubdtype(array.dtype, np.floating) and array.dtype != np.bool_:
        raise TypeError(f"images must be uint8 or floating point, got {array.dtype}")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 1:
        raise ValueError(
            f"image values span [{low:.3g}, {high:.3g}], but image_grid shows floats in "
            "[0, 1] or uint8 in 0..255; rescale first (images in [-1, 1]: (x + 1) / 2)"
        )
    return array.astype(np.float32)


def image_grid(images, nrow: int = 8, *, title: str | None = None, padding: int = 2) -> Figure:
    """Show images in a grid of ``nrow`` per row.

    ``images``: a tensor or array of shape (N, 28, 28), (N, 784) or
    (N, C, H, W) with C = 1 or 3; uint8 (0..255) or floats in [0, 1].
    """
    if not isinstance(nrow, int) or isinstance(nrow, bool) or nrow < 1:
        raise ValueError(f"nrow must be a positive int, got {nrow!r}")
    array = _as_grey_or_rgb(images)
    n, h, w = array.shape[:3]
    cols, rows = min(nrow, n), math.ceil(n / nrow)
    # one canvas with white lines between the images: (rows*(h+p)+p, cols*(w+p)+p[, 3])
    canvas = np.ones(
        (rows * (h + padding) + padding, cols * (w + padding) + padding, *array.shape[3:]),
        dtype=np.float32,
    )
    for k, image in enumerate(array):
        top = padding + (k // nrow) * (h + padding)
        left = padding + (k % nrow) * (w + padding)
        canvas[top : top + h, left : left + w] = image
    inches = min(2.0, 10 / cols)  # per image: at most 10 inches wide in all
    fig, ax = plt.subplots(figsize=(cols * inches, rows * inches + (0.4 if title else 0)))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    fig.tight_layout(pad=0.2)
    plt.close(fig)  # the caller displays it; pyplot must not show it a second time
    return fig


def plot_history(history: History, *, logy: bool = False) -> Figure:
    """One panel per metric: step metrics against the step, the others
    (``evaluate``'s) against the epoch."""
    per_step = list(history.steps)
    per_epoch = [key for key in history.epochs if key not in history.steps]
    panels = [(key, history.steps[key], "step") for key in per_step]
    panels += [(key, history.epochs[key], "epoch") for key in per_epoch]
    if not panels:
        raise ValueError("history is empty: train with fit() first")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, (key, values, unit) in zip(axes[0], panels, strict=True):
        x = np.arange(1, len(values) + 1)
        ax.plot(x, values, marker="o" if unit == "epoch" else None)
        ax.set_xlabel(unit)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(key)
        if logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    plt.close(fig)
    return fig
