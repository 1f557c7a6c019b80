"""What every chart shares: colours (random is always orange), fonts, layout and seed bands."""

from __future__ import annotations

import plotly.graph_objects as go

RANDOM = "random"

PALETTE = ["#1f5fbf", "#2a9d5c", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d"]

RANDOM_COLOR = "#f08a24"

BASE_COLOR = "#555555"

KEPT_COLOR = "rgba(150, 150, 150, 0.45)"

FONT = {"size": 15}


def color_for(name: str, names: list[str]) -> str:
    """Random pruning is always orange; the others take the palette in order."""
    if name.startswith(RANDOM):
        return RANDOM_COLOR
    others = [n for n in names if not n.startswith(RANDOM)]
    return PALETTE[others.index(name) % len(PALETTE)] if name in others else PALETTE[0]


def layout(fig: go.Figure, title: str, height: int = 420, legend_below: bool = False) -> go.Figure:
    """Title top left; the legend top right, or under the x axis for charts in a narrow column,
    where a legend beside the title would run into it."""
    if legend_below:
        legend = {"orientation": "h", "yanchor": "top", "y": -0.3, "xanchor": "left", "x": 0.0}
        margin = {"l": 60, "r": 20, "t": 60, "b": 110}
    else:
        legend = {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0}
        margin = {"l": 60, "r": 20, "t": 60, "b": 50}
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left"},
        height=height,
        font=FONT,
        margin=margin,
        legend=legend,
        hoverlabel={"font_size": 14},
    )
    return fig


def band(x: list, upper: list, lower: list, color: str, group: str) -> go.Scatter:
    """A shaded area between `lower` and `upper` over `x`, in `group`'s colour, with no legend entry."""
    return go.Scatter(
        x=x + x[::-1],
        y=upper + lower[::-1],
        fill="toself",
        fillcolor=color,
        mode="lines",
        opacity=0.18,
        line={"width": 0},
        hoverinfo="skip",
        showlegend=False,
        legendgroup=group,
    )
