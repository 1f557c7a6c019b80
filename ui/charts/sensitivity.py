"""Charts of the Layer sensitivity page: layers by ratios as heatmaps, one line per layer, and the MACs budget."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ui.charts.compare import stage_panels
from ui.charts.style import PALETTE, RANDOM, layout


def sensitivity_heatmaps(grids: dict[str, pd.DataFrame], what: str) -> go.Figure:
    """One heatmap per panel (e.g. the criterion and random): accuracy (%) of each layer pruned alone at
    each ratio, on one colour scale, the figure written in each cell."""
    fig = make_subplots(rows=1, cols=len(grids), subplot_titles=list(grids), shared_yaxes=True)
    for col, grid in enumerate(grids.values(), start=1):
        values = grid.to_numpy() * 100
        fig.add_trace(
            go.Heatmap(
                z=values,
                x=[f"{ratio:.0%}" for ratio in grid.columns],
                y=list(grid.index),
                zmin=0,
                zmax=100,
                colorscale="RdYlGn",
                showscale=col == len(grids),
                colorbar={"title": "accuracy (%)"},
                text=[["" if pd.isna(v) else f"{v:.1f}" for v in row] for row in values],
                texttemplate="%{text}",
                hovertemplate="%{y} pruned %{x}: %{z:.1f}%<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title="filters pruned in that layer", type="category", row=1, col=col)
    fig.update_yaxes(autorange="reversed", type="category")
    height = max(320, 60 + 34 * max(len(grid.index) for grid in grids.values()))
    return layout(fig, f"Accuracy {what}, one layer pruned at a time", height=height)


def sensitivity_lines(lines: pd.DataFrame, layers: list[str], what: str) -> go.Figure:
    """Accuracy against the ratio, one colour per layer: the criterion solid, random dashed."""
    fig = go.Figure()
    for i, layer in enumerate(layers):
        color = PALETTE[i % len(PALETTE)]
        for criterion in dict.fromkeys(lines["criterion"]):
            rows = lines[(lines["layer"] == layer) & (lines["criterion"] == criterion)].sort_values("ratio")
            if rows.empty:
                continue
            fig.add_trace(
                go.Scatter(
                    x=rows["ratio"] * 100,
                    y=rows["mean"] * 100,
                    name=f"{layer}, {criterion}",
                    mode="lines+markers",
                    line={"color": color, "width": 3, "dash": "dash" if criterion == RANDOM else "solid"},
                    hovertemplate=f"{layer}, {criterion} at %{{x:.0f}}%: %{{y:.1f}}%<extra></extra>",
                )
            )
    fig.update_xaxes(title="filters pruned in that layer (%)")
    fig.update_yaxes(title="test accuracy (%)", range=[0, 100])
    return layout(fig, f"Accuracy {what} per layer (random dashed)", height=480, legend_below=True)


def budget_chart(summary: pd.DataFrame) -> go.Figure:
    """Accuracy against the MACs target, one line per allocation (mean over seeds) in its min-max band;
    `summary` is a `BudgetStudy`'s `chart_summary`."""
    return stage_panels(
        summary,
        "allocation",
        "target",
        "MACs kept (% of the base's)",
        "One MACs budget spent four ways, fine-tuned alike (band: min to max over seeds)",
    )
