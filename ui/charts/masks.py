"""Charts of the Random masks page: the N masks' validation accuracies and the masks themselves."""

from __future__ import annotations

import plotly.graph_objects as go

from ui.charts.style import BASE_COLOR, layout

MASK_MARKS = {"best": "#2a9d5c", "median": "#1f5fbf", "worst": "#c0392b"}


def mask_accuracy_histogram(val_accs: list[float], marks: dict[str, float], base_accuracy: float) -> go.Figure:
    """How the N random masks score on validation before retraining, with the best, median and worst
    marked and the unpruned base as a dashed line."""
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
    for position, (name, acc) in enumerate(marks.items()):
        fig.add_vline(
            x=acc * 100,
            line={"color": MASK_MARKS.get(name, BASE_COLOR), "width": 3},
            annotation_text=f"{name} {acc:.1%}",
            annotation_position="top left" if name == "worst" else "top right",
            annotation_y=1.0 - 0.09 * position,
            annotation_font={"color": MASK_MARKS.get(name, BASE_COLOR), "size": 14},
        )
    fig.add_vline(x=base_accuracy * 100, line={"color": BASE_COLOR, "dash": "dash"})
    fig.update_xaxes(title=f"validation accuracy (%), dashed: before pruning {base_accuracy:.1%}")
    fig.update_yaxes(title="masks")
    fig.update_layout(bargap=0.05)
    return layout(fig, f"Validation accuracy of the {len(val_accs)} random masks, before retraining", height=400)


def mask_layer_image(layer: str, image: list[list[bool]], kernel: tuple[int, int], sparsity: float) -> go.Figure:
    """One conv layer's weights as kept (dark) or removed (light): one k x k tile per kernel, output
    filters across, input channels down."""
    kh, kw = kernel
    rows, cols = len(image), len(image[0]) if image else 0
    where = [[[c // kw, r // kh] for c in range(cols)] for r in range(rows)]
    fig = go.Figure(
        go.Heatmap(
            z=[[1 if kept else 0 for kept in row] for row in image],
            customdata=where,
            colorscale=[[0.0, "#eeeeee"], [1.0, "#1f5fbf"]],
            zmin=0,
            zmax=1,
            showscale=False,
            hovertemplate="filter %{customdata[0]}, input %{customdata[1]}: %{z}<extra>1 kept, 0 removed</extra>",
        )
    )
    fig.update_xaxes(title=f"output filters ({cols // kw}), {kh}x{kw} kernel each", showticklabels=False)
    fig.update_yaxes(title=f"inputs ({rows // kh})", showticklabels=False, autorange="reversed")
    height = 110 + int(min(360, max(40, 420 * rows / max(1, cols))))  # near-square tiles in a half-page column
    fig = layout(fig, f"{layer}: {sparsity:.0%} of its weights removed", height=height)
    fig.update_layout(margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return fig


# --- History-based filter pruning (pages/hbfp.py) ---------------------------------------------------------
