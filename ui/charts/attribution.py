"""Plotly figures of the attribution page: every filter's maps in one grid, and the input attribution
of several networks side by side."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from plasticity.inspection import Looking
from ui.charts.style import FONT

PRUNED_VEIL = "rgba(245, 245, 245, 0.82)"
ASSUMED_WIDTH = 760  # pixels a chart gets on a narrow screen: sets the grid's height (wider screens centre it)


def _pair_columns(filters: int) -> int:
    """Filters per row: 5, more for wide layers so the grid stays about square."""
    return max(5, math.ceil(math.sqrt(filters / 2)))


def filter_grid(
    activation: np.ndarray,
    attribution: np.ndarray,
    order: list[int],
    pruned: set[int],
    scores: np.ndarray,
    title: str,
) -> go.Figure:
    """Per filter, its activation map (left) and its attribution map (right), in `order`, numbered; the
    pruned ones veiled in grey. `activation` and `attribution` are (filters, H, W).

    One figure built in one pass (two heatmaps, then a label and a veil per filter): longer than a
    screen, but each part needs the layout computed at its top."""
    filters, height, width = activation.shape
    columns = _pair_columns(filters)
    rows = math.ceil(filters / columns)
    pair_width = 2 * width + 1
    cell_width, row_height = pair_width + max(2, width // 3), height + max(4, height // 3)
    canvas_width, canvas_height = columns * cell_width, rows * row_height
    act = np.full((canvas_height, canvas_width), np.nan)
    attr = np.full((canvas_height, canvas_width), np.nan)
    who = np.full((canvas_height, canvas_width, 2), np.nan)  # filter index and its score, for the hover
    fig = go.Figure()
    for position, index in enumerate(order):
        row, column = divmod(position, columns)
        top, left = row * row_height + (row_height - height), column * cell_width
        act[top : top + height, left : left + width] = activation[index]
        attr[top : top + height, left + width + 1 : left + pair_width] = attribution[index]
        who[top : top + height, left : left + pair_width] = (index, scores[index])
        gone = index in pruned
        fig.add_annotation(
            x=left - 0.5,
            y=top - 0.5,
            text=f"#{index}",
            showarrow=False,
            xanchor="left",
            yanchor="bottom",
            font={"size": 12, "color": "#a0a0a0" if gone else "#222222"},
        )
        if gone:
            fig.add_shape(
                type="rect",
                x0=left - 0.5,
                x1=left + pair_width - 0.5,
                y0=top - 0.5,
                y1=top + height - 0.5,
                fillcolor=PRUNED_VEIL,
                line={"width": 0},
                layer="above",
            )
    # The strongest positions of a few filters would wash the rest out: saturate the top 1% instead.
    peak = float(np.percentile(np.abs(attribution), 99)) or float(np.abs(attribution).max()) or 1.0
    who_hover = "filter %{customdata[0]:.0f} (score %{customdata[1]:.3g})<br>"
    bar = {"orientation": "h", "len": 0.45, "thickness": 12, "y": -0.02, "yanchor": "top", "title": {"side": "top"}}
    fig.add_trace(
        go.Heatmap(
            z=act,
            customdata=who,
            colorscale="Viridis",
            zmin=0,
            zmax=float(np.nanmax(activation)) or 1.0,
            colorbar={**bar, "x": 0.0, "xanchor": "left", "title": {"text": "activation (left)", "side": "top"}},
            hovertemplate=who_hover + "activation %{z:.3g}<extra></extra>",
            hoverongaps=False,
        )
    )
    fig.add_trace(
        go.Heatmap(
            z=attr,
            customdata=who,
            colorscale="RdBu",
            reversescale=True,  # red for evidence for the class, blue against
            zmid=0,
            zmin=-peak,
            zmax=peak,
            colorbar={**bar, "x": 1.0, "xanchor": "right", "title": {"text": "attribution (right)", "side": "top"}},
            hovertemplate=who_hover + "attribution %{z:.3g}<extra></extra>",
            hoverongaps=False,
        )
    )
    fig.update_xaxes(visible=False, range=[-0.5, canvas_width - 0.5], constrain="domain")
    fig.update_yaxes(visible=False, range=[canvas_height - 0.5, -0.5], scaleanchor="x", constrain="domain")
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left"},
        height=int(150 + ASSUMED_WIDTH * canvas_height / canvas_width),
        font=FONT,
        margin={"l": 10, "r": 10, "t": 50, "b": 90},
        plot_bgcolor="white",
    )
    return fig


def where_they_look_chart(image: np.ndarray, looks: list[Looking], method: str, label: int) -> go.Figure:
    """The image, then each network's input attribution for the image's label, each scaled to its own
    largest value (the pattern matters, not the size), with its prediction and its similarity to the first."""
    titles = [f"<b>the image</b><br>a {label}"]
    for i, look in enumerate(looks):
        title = f"<b>{look.name}</b><br>says {look.predicted} ({look.confidence:.0%})"
        titles.append(title + ("" if i == 0 else f"<br>similarity to {looks[0].name}: {look.similarity:.2f}"))
    fig = make_subplots(rows=1, cols=1 + len(looks), subplot_titles=titles, horizontal_spacing=0.03)
    fig.update_annotations(font_size=13, yanchor="bottom")
    fig.add_trace(
        go.Heatmap(z=image, colorscale="Greys", reversescale=True, showscale=False, hoverinfo="skip"), row=1, col=1
    )
    signed = any(float(look.attribution.min()) < 0 for look in looks)
    for col, look in enumerate(looks, start=2):
        values = look.attribution.numpy()
        values = values / (float(np.abs(values).max()) or 1.0)
        fig.add_trace(
            go.Heatmap(
                z=values,
                colorscale="RdBu" if signed else "Reds",
                reversescale=signed,
                zmin=-1 if signed else 0,
                zmax=1,
                showscale=col == 2,
                colorbar={"title": "relative<br>attribution", "thickness": 12},
                hovertemplate=f"{look.name}<br>row %{{y}}, column %{{x}}<br>%{{z:.2f}}<extra></extra>",
            ),
            row=1,
            col=col,
        )
    for col in range(1, 2 + len(looks)):
        anchor = "x" if col == 1 else f"x{col}"
        fig.update_yaxes(autorange="reversed", scaleanchor=anchor, visible=False, row=1, col=col)
        fig.update_xaxes(visible=False, constrain="domain", row=1, col=col)
    method_label = method.replace("-", " ")
    fig.update_layout(
        title={"text": f"Where each network looks ({method_label} of the class {label})", "x": 0.0},
        height=380,
        font=FONT,
        margin={"l": 10, "r": 10, "t": 120, "b": 10},
    )
    return fig
