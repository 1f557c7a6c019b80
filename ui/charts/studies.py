"""Charts of the Class subsets & pre-training page."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from plasticity.studies.class_subset import ALL_CLASSES
from ui.charts.style import band, color_for, layout

MODALITY_COLORS = {"scratch": "#8e44ad", "pretrained": "#2a9d5c"}


def class_subset_chart(summary: pd.DataFrame) -> go.Figure:
    """Accuracy against the ratio, right after pruning and after fine-tuning, one line per criterion and
    class scope (mean over seeds, bars from the lowest to the highest seed): pruned for the subset solid,
    for every class dashed; ratio 0 is the unpruned base on the same classes."""
    stages = {"acc_pruned": "right after pruning", "acc_final": "after fine-tuning"}
    # each panel its own accuracy scale: after fine-tuning, the lines lie within a few points of each other
    fig = make_subplots(rows=1, cols=2, subplot_titles=list(stages.values()), horizontal_spacing=0.08)
    names = list(dict.fromkeys(summary["criterion"]))
    scopes = sorted(dict.fromkeys(summary["pruned for"]), key=lambda scope: scope == ALL_CLASSES)
    for col, stage in enumerate(stages, start=1):
        for name in names:
            for scope in scopes:
                rows = summary[
                    (summary["stage"] == stage) & (summary["criterion"] == name) & (summary["pruned for"] == scope)
                ].sort_values("ratio")
                if not rows.empty:
                    trace = _scope_line(rows, f"{name}, for {scope}", color_for(name, names), scope == ALL_CLASSES)
                    fig.add_trace(trace.update(showlegend=col == 1), row=1, col=col)
        fig.update_xaxes(title="filters pruned (%) (0 = unpruned)", row=1, col=col)
    fig.update_yaxes(title="test accuracy on those classes (%)", row=1, col=1)
    return layout(fig, "Pruned for a few classes (solid) vs for all classes (dashed)", height=480, legend_below=True)


def _scope_line(rows: pd.DataFrame, label: str, color: str, dashed: bool) -> go.Scatter:
    return go.Scatter(
        x=rows["ratio"] * 100,
        y=rows["mean"] * 100,
        error_y={
            "type": "data",
            "symmetric": False,
            "array": (rows["max"] - rows["mean"]) * 100,
            "arrayminus": (rows["mean"] - rows["min"]) * 100,
            "visible": bool((rows["count"] > 1).any()),
            "thickness": 1.5,
        },
        name=label,
        legendgroup=label,
        mode="lines+markers",
        line={"color": color, "width": 3, "dash": "dash" if dashed else "solid"},
        marker={"size": 9, "symbol": "circle-open" if dashed else "circle"},
        customdata=rows[["min", "max", "count"]].to_numpy() * [100, 100, 1],
        hovertemplate=(
            f"{label} at %{{x:.0f}}%<br>mean %{{y:.1f}}%<br>"
            "seeds: %{customdata[2]:.0f}, range %{customdata[0]:.1f}-%{customdata[1]:.1f}%<extra></extra>"
        ),
    )


def pretraining_chart(summary: pd.DataFrame) -> go.Figure:
    """Accuracy against the share of parameters removed, one line per modality (mean over seeds, in a band
    of ± one standard deviation), right after pruning and after fine-tuning; 0 is the unpruned base.
    Each panel has its own accuracy scale, so the fine-tuned lines are not flattened by the pruned ones."""
    stages = {"acc_pruned": "right after pruning", "acc_final": "after fine-tuning"}
    fig = make_subplots(rows=1, cols=2, subplot_titles=list(stages.values()), horizontal_spacing=0.08)
    for col, stage in enumerate(stages, start=1):
        for modality, color in MODALITY_COLORS.items():
            rows = summary[summary["modality"] == modality].sort_values("ratio")
            if rows.empty:
                continue
            x = [0.0, *(rows["params_removed_mean"] * 100)]
            mean = [rows["acc_base_mean"].mean() * 100, *(rows[f"{stage}_mean"] * 100)]
            spread = [rows["acc_base_std"].mean() * 100, *(rows[f"{stage}_std"] * 100)]
            seeds = [int(rows["seeds"].max()), *rows["seeds"]]
            fig.add_trace(
                band(x, [m + s for m, s in zip(mean, spread)], [m - s for m, s in zip(mean, spread)], color, modality),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=mean,
                    name=modality,
                    legendgroup=modality,
                    showlegend=col == 1,
                    mode="lines+markers",
                    line={"color": color, "width": 3},
                    marker={"size": 9},
                    customdata=list(zip(spread, seeds)),
                    hovertemplate=(
                        f"{modality} with %{{x:.1f}}% of parameters removed<br>{stages[stage]} %{{y:.1f}}% "
                        "± %{customdata[0]:.1f} (%{customdata[1]} seeds)<extra></extra>"
                    ),
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title="parameters removed (%) (0 = unpruned)", range=[-3, 100], row=1, col=col)
    fig.update_yaxes(title="test accuracy on the target task (%)", row=1, col=1)
    title = "Pre-trained vs from scratch: accuracy against parameters removed (band: ± one std over seeds)"
    return layout(fig, title, height=480, legend_below=True)
