"""The loss curve PNG shown in model cards and the `models/{id}/loss.png` resource."""

from __future__ import annotations

import io
from typing import Any


def loss_plot_png(reports: list[dict[str, Any]]) -> bytes:
    """Train and validation loss against iteration, as PNG bytes; an empty plot when there is no data."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5), dpi=100)
    axes = figure.subplots()
    for kind, key, label, style in (
        ("train", "train_loss", "train", "o-"),
        ("val", "val_loss", "validation", "o--"),
    ):
        points = [(r["iteration"], r[key]) for r in reports if r.get("kind") == kind and r.get(key) is not None]
        if points:
            steps, losses = zip(*points, strict=True)
            axes.plot(steps, losses, style, label=label, markersize=3)
    if axes.lines:
        axes.legend()
    else:
        axes.text(0.5, 0.5, "no losses reported yet", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("iteration")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
