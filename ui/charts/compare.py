"""The chart of the Random vs criterion page: accuracy against the ratio, one line per criterion."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ui.charts.style import band, color_for, layout


def comparison_chart(summary: pd.DataFrame) -> go.Figure:
    """Accuracy against pruning ratio, one line per criterion (mean over seeds) in its min-max band."""
    stages = {"acc_pruned": "right after pruning", "acc_final": "after fine-tuning"}
    fig = make_subplots(rows=1, cols=2, subplot_titles=list(stages.values()), shared_yaxes=True)
    names = list(dict.fromkeys(summary["criterion"]))
    for col, stage in enumerate(stages, start=1):
        for name in names:
            rows = summary[(summary["stage"] == stage) & (summary["criterion"] == name)].sort_values("ratio")
            if rows.empty:
                continue
            color = color_for(name, names)
            x = (rows["ratio"] * 100).tolist()
            fig.add_trace(
                band(x, (rows["max"] * 100).tolist(), (rows["min"] * 100).tolist(), color, name),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=rows["mean"] * 100,
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    mode="lines+markers",
                    line={"color": color, "width": 3},
                    marker={"size": 9},
                    customdata=rows[["min", "max", "count"]].to_numpy() * [100, 100, 1],
                    hovertemplate=(
                        f"{name} at %{{x:.0f}}%<br>mean %{{y:.1f}}%<br>"
                        "seeds: %{customdata[2]:.0f}, range %{customdata[0]:.1f}-%{customdata[1]:.1f}%"
                        "<extra></extra>"
                    ),
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title="filters pruned (%)", row=1, col=col)
    fig.update_yaxes(title="test accuracy (%)", row=1, col=1)
    return layout(fig, "Random pruning vs criteria (band: min to max over seeds)", height=480, legend_below=True)
