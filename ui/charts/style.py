"""What every chart shares: one colour per concept (random is always orange), fonts, layout, seed bands,
and presenter mode (large fonts and thick lines for a projector)."""

from __future__ import annotations

import plotly.graph_objects as go

RANDOM = "random"

# One colour per concept on every page: random is always orange, each criterion keeps its own colour
# whatever else is drawn beside it, and the best and median masks are the same in every chart.
CONCEPT_COLORS = {
    RANDOM: "#f08a24",
    "random-global": "#f08a24",  # random pruning over the whole network: random's colour
    "l1": "#1f5fbf",
    "l2": "#16a085",
    "bn-scale": "#8e44ad",
    "apoz": "#c0392b",
    "mean-activation": "#b7950b",
    "taylor": "#6d4c41",
    "hbfp": "#d6336c",
    "attribution": "#2c3e50",
    "attribution:conductance": "#5d6d7e",
    "attribution:ablation": "#7b241c",
    "best": "#2a9d5c",
    "median": "#7f8c8d",
    "worst": "#c0392b",
}
PALETTE = ["#1f5fbf", "#2a9d5c", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d"]  # for names that are no concept

RANDOM_COLOR = CONCEPT_COLORS[RANDOM]

BASE_COLOR = "#555555"

KEPT_COLOR = "rgba(150, 150, 150, 0.45)"

FONT = {"size": 15}
PRESENTER_FONT = {"size": 22}


def concept(name: str) -> str:
    """The concept a trace's name is about: "l1, masked", "hbfp: retrained" and "random at 50%" are l1,
    hbfp and random."""
    name = name.split(",")[0].split(": ")[0].split(" at ")[0]
    return name.removeprefix("kept by ").removeprefix("pruned by ").strip()


def color_for(name: str, names: list[str] = ()) -> str:
    """The concept's own colour; a name that is no concept takes the palette in the order of `names`."""
    if (color := CONCEPT_COLORS.get(concept(name))) is not None:
        return color
    others = [n for n in names if concept(n) not in CONCEPT_COLORS]
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


def presenter(fig: go.Figure) -> go.Figure:
    """A copy of `fig` for a projector: larger fonts, thicker lines and bigger markers, the legend beside
    the plot (under a chart in a narrow column it is out of sight of the back rows)."""
    fig = go.Figure(fig)
    font = fig.layout.font.size or FONT["size"]
    fig.update_layout(
        font={"size": round(font * PRESENTER_FONT["size"] / FONT["size"])},
        title_font_size=PRESENTER_FONT["size"] + 4,
        hoverlabel={"font_size": 20},
        height=round((fig.layout.height or 420) * 1.25),
    )
    if fig.layout.showlegend is not False:
        fig.update_layout(
            legend={"orientation": "v", "yanchor": "top", "y": 1.0, "xanchor": "left", "x": 1.02},
            margin={"r": 40, "b": 70},
        )
    for trace in fig.data:
        if trace.type == "scatter" and trace.line.width:
            trace.line.width = trace.line.width * 1.8
        size = trace.marker.size if trace.type == "scatter" else None
        if isinstance(size, (int, float)) and size:
            trace.marker.size = size * 1.5
        elif size is not None and not isinstance(size, (int, float)):  # one size per point (a schedule's cuts)
            trace.marker.size = [point * 1.5 for point in size]
    for annotation in fig.layout.annotations:
        annotation.font.size = round((annotation.font.size or font) * PRESENTER_FONT["size"] / FONT["size"])
    return fig
