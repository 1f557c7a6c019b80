"""Charts of the Filter-norm histories page: every filter's norm over the epochs, as lines and a heatmap."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ui.charts.style import KEPT_COLOR, RANDOM, color_for, layout


def norm_lines(table: pd.DataFrame, marks: dict[str, set[int]], norm: str = "l1") -> go.Figure:
    """Every filter's norm over the epochs; filters in `marks` coloured by who would prune them."""
    fig = go.Figure()
    names = list(marks)
    # The legend says exactly what a colour means, in the same order whatever the layer: pruned by the
    # criterion only, by random only, by both, by neither.
    alone = len(names) == 1
    order = [f"pruned by {name}" if alone else f"pruned by {name} only" for name in names]
    order += ["pruned by both", "kept" if alone else "kept by both"]
    shown: set[str] = set()
    for filter_index, rows in table.groupby("filter", sort=True):
        groups = [name for name in names if filter_index in marks[name]]
        if not names:  # nothing to mark (the Home page's picture): one colour, no legend
            group, color = "a filter", "rgba(31, 95, 191, 0.55)"
        elif len(groups) > 1:
            group, color = "pruned by both", "#8e44ad"
        elif groups:
            group, color = order[names.index(groups[0])], color_for(groups[0], names)
        else:
            group, color = order[-1], KEPT_COLOR
        fig.add_trace(
            go.Scatter(
                x=rows["epoch"],
                y=rows[norm],
                mode="lines",
                name=group,
                legendgroup=group,
                legendrank=order.index(group) + 1 if group in order else 1000,
                showlegend=bool(names) and group not in shown,
                line={"color": color, "width": 2.5 if groups else 1.5},
                customdata=[filter_index] * len(rows),
                hovertemplate=f"filter %{{customdata}}<br>epoch %{{x}}<br>{norm} %{{y:.3f}}<br>{group}<extra></extra>",
            )
        )
        shown.add(group)
    fig.update_xaxes(title="training epoch (0 = initialisation)", dtick=1)
    fig.update_yaxes(title=f"{norm}-norm of the filter")
    return layout(fig, f"{norm}-norm of every filter while the base trained", height=460)


def norm_heatmap(matrix: pd.DataFrame, marks: dict[str, set[int]], norm: str = "l1") -> go.Figure:
    """filters x epochs heatmap, with a strip beside it marking the filters each run would prune."""
    labels = [f"filter {i}" for i in matrix.index]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, column_widths=[0.86, 0.14], horizontal_spacing=0.01)
    fig.add_trace(
        go.Heatmap(
            z=matrix.to_numpy(),
            x=[str(e) for e in matrix.columns],
            y=labels,
            colorscale="Viridis",
            colorbar={"title": norm, "x": 1.02},
            hovertemplate=f"%{{y}}<br>epoch %{{x}}<br>{norm} %{{z:.3f}}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    names = list(marks)
    for name in names:
        picked = [label for i, label in zip(matrix.index, labels) if i in marks[name]]
        fig.add_trace(
            go.Scatter(
                x=[name] * len(picked),
                y=picked,
                mode="markers",
                name=f"pruned by {name}",
                marker={"symbol": "x" if not name.startswith(RANDOM) else "circle", "size": 9},
                marker_color=color_for(name, names),
                hovertemplate=f"%{{y}}: pruned by {name}<extra></extra>",
            ),
            row=1,
            col=2,
        )
    height = max(380, 16 * len(labels) + 140)  # every filter labelled, none skipped
    fig.update_yaxes(autorange="reversed", showticklabels=len(labels) <= 64, dtick=1, tickfont_size=11, row=1, col=1)
    fig.update_xaxes(title="training epoch", row=1, col=1)
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=names, row=1, col=2)
    return layout(fig, f"{norm}-norm heatmap: filters x epochs", height=height)
