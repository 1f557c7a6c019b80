"""Accuracy against a share, right after pruning and after fine-tuning side by side: the Random vs criterion
page's chart (against the ratio, one line per criterion), and any study's alike."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ui.charts.style import band, color_for, layout


def comparison_chart(summary: pd.DataFrame) -> go.Figure:
    """Accuracy against pruning ratio, one line per criterion (mean over seeds) in its min-max band."""
    return stage_panels(
        summary, "criterion", "ratio", "filters pruned (%)", "Random pruning vs criteria (band: min to max over seeds)"
    )


def stage_panels(summary: pd.DataFrame, series: str, x: str, x_title: str, title: str) -> go.Figure:
    """Accuracy right after pruning and after fine-tuning side by side against `x` (a share, drawn in
    percent), one line per value of `series` (mean over seeds) in its min-max band; `summary` is a
    study's `chart_summary`."""
    stages = {"acc_pruned": "right after pruning", "acc_final": "after fine-tuning"}
    # Each panel's own y axis, zoomed to its lines and bands: after fine-tuning they lie within a few
    # points, and on the other panel's scale the lines and the seed bands would be a hairline.
    fig = make_subplots(rows=1, cols=2, subplot_titles=list(stages.values()), horizontal_spacing=0.08)
    names = list(dict.fromkeys(summary[series]))
    percents = sorted({round(share * 100) for share in summary[x]})
    for col, stage in enumerate(stages, start=1):
        for name in names:
            rows = summary[(summary["stage"] == stage) & (summary[series] == name)].sort_values(x)
            if rows.empty:
                continue
            color = color_for(name, names)
            shares = (rows[x] * 100).tolist()
            fig.add_trace(
                band(shares, (rows["max"] * 100).tolist(), (rows["min"] * 100).tolist(), color, name),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=shares,
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
        fig.update_yaxes(range=_padded(summary[summary["stage"] == stage]), row=1, col=col)
    # The ticks are the ratios that were run, and one ratio alone is not spread over a fraction of a percent.
    fig.update_xaxes(title=x_title, tickmode="array", tickvals=percents, range=_padded_x(percents))
    fig.update_yaxes(title="test accuracy (%)", row=1, col=1)
    fig = layout(fig, title, height=480)
    fig.update_layout(legend={"orientation": "h", "yanchor": "bottom", "y": 1.08, "xanchor": "right", "x": 1.0})
    fig.update_layout(margin={"t": 110})
    return fig


def _padded(rows: pd.DataFrame) -> list[float]:
    """The y range of one panel: its lowest to highest value (bands included), in percent, with a margin."""
    low, high = rows["min"].min() * 100, rows["max"].max() * 100
    margin = max(1.0, (high - low) * 0.1)
    return [low - margin, min(100.5, high + margin)]


def _padded_x(percents: list[int]) -> list[float]:
    margin = max(5, (percents[-1] - percents[0]) * 0.06)
    return [percents[0] - margin, percents[-1] + margin]
