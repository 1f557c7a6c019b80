"""Charts of the Random masks page: the N masks' validation accuracies and the masks themselves."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import plotly.graph_objects as go

from ui.charts.style import BASE_COLOR, color_for, layout


def mask_accuracy_histogram(val_accs: list[float], marks: dict[str, float], base_accuracy: float) -> go.Figure:
    """How the N random masks score on validation before retraining, with the best, median and worst
    marked (named in the legend, in the colours the recovery chart gives them) and the unpruned base
    as a dashed line."""
    fig = go.Figure(
        go.Histogram(
            x=[acc * 100 for acc in val_accs],
            xbins={"size": 2},
            marker={"color": "rgba(31, 95, 191, 0.35)", "line": {"color": "#1f5fbf", "width": 1}},
            name="masks",
            showlegend=False,
            hovertemplate="validation accuracy %{x}%<br>%{y} masks<extra></extra>",
        )
    )
    counts = Counter(int(acc * 100 // 2) for acc in val_accs)
    top = max(counts.values(), default=1)
    lines = {f"{name} {acc:.1%}": (acc, color_for(name), "solid") for name, acc in marks.items()}
    lines[f"before pruning {base_accuracy:.1%}"] = (base_accuracy, BASE_COLOR, "dash")
    for label, (acc, color, dash) in lines.items():
        fig.add_trace(
            go.Scatter(
                x=[acc * 100, acc * 100],
                y=[0, top * 1.08],
                mode="lines",
                name=label,
                line={"color": color, "width": 3, "dash": dash},
                hovertemplate=f"{label}<extra></extra>",
            )
        )
    fig.update_xaxes(title="validation accuracy (%)")
    fig.update_yaxes(title="masks", rangemode="tozero", tickformat="d", dtick=max(1, math.ceil(top / 5)))
    fig.update_layout(bargap=0.05)
    fig = layout(fig, f"Validation accuracy of the {len(val_accs)} random masks, before retraining", height=400)
    fig.update_layout(
        legend={"orientation": "v", "yanchor": "top", "y": 1.0, "xanchor": "left", "x": 1.01},
        margin={"r": 200},
    )
    return fig


def mask_layer_image(layer: str, image: list[list[bool]], kernel: tuple[int, int], sparsity: float) -> go.Figure:
    """One conv layer's weights as kept (dark) or removed (light): one k x k tile per kernel, output
    filters across, input channels down, with a white gap between kernels so that a fine pattern
    stays readable instead of blurring into a moire."""
    kh, kw = kernel
    rows, cols = len(image), len(image[0]) if image else 0
    # Arrays, not nested lists: plotly validates and sends them as typed arrays, a list of lists element by element.
    down, across = np.meshgrid(np.arange(rows) // kh, np.arange(cols) // kw, indexing="ij")
    fig = go.Figure(
        go.Heatmap(
            z=np.asarray(image, dtype=np.uint8).reshape(rows, cols),
            customdata=np.stack([across, down], axis=-1),
            colorscale=[[0.0, "#eeeeee"], [1.0, "#1f5fbf"]],
            zmin=0,
            zmax=1,
            showscale=False,
            hovertemplate="filter %{customdata[0]}, input %{customdata[1]}: %{z}<extra>1 kept, 0 removed</extra>",
        )
    )
    fig.update_xaxes(title=f"output filters ({cols // kw}), {kh}x{kw} kernel each", showticklabels=False)
    fig.update_yaxes(title=f"inputs ({rows // kh})", showticklabels=False, autorange="reversed")
    # The gaps as one list of shapes: add_vline/add_hline revalidate every shape so far, seconds for conv2.
    gap = {"color": "white", "width": 1.5}
    vertical = [
        {"type": "line", "xref": "x", "yref": "paper", "x0": c - 0.5, "x1": c - 0.5, "y0": 0, "y1": 1}
        for c in range(kw, cols, kw)
    ]
    horizontal = [
        {"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": r - 0.5, "y1": r - 0.5}
        for r in range(kh, rows, kh)
    ]
    fig.update_layout(shapes=[{**shape, "line": gap} for shape in vertical + horizontal])
    height = 110 + int(min(360, max(40, 420 * rows / max(1, cols))))  # near-square tiles in a half-page column
    fig = layout(fig, f"{layer}: {sparsity:.0%} of its weights removed", height=height)
    fig.update_layout(margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return fig


def kernel_pattern_image(layer: str, image: list[list[bool]], kernel: tuple[int, int], sparsity: float) -> go.Figure:
    """An intra-kernel mask, which removes the same positions from every kernel of a layer, as the one
    k x k pattern it is, large enough to read (all the layer's kernels side by side make a moire)."""
    kh, kw = kernel
    tile = [row[:kw] for row in image[:kh]]
    fig = go.Figure(
        go.Heatmap(
            z=[[1 if kept else 0 for kept in row] for row in tile],
            colorscale=[[0.0, "#eeeeee"], [1.0, "#1f5fbf"]],
            zmin=0,
            zmax=1,
            xgap=3,
            ygap=3,
            showscale=False,
            hovertemplate="row %{y}, column %{x}: %{z}<extra>1 kept, 0 removed</extra>",
        )
    )
    fig.update_xaxes(title=f"the {kh}x{kw} positions of every kernel", showticklabels=False, scaleanchor="y")
    fig.update_yaxes(showticklabels=False, autorange="reversed")
    fig = layout(fig, f"{layer}: {sparsity:.0%} of its weights removed", height=300)
    fig.update_layout(margin={"l": 60, "r": 20, "t": 50, "b": 50}, plot_bgcolor="white")
    return fig


# --- History-based filter pruning (pages/hbfp.py) ---------------------------------------------------------
