"""Charts of the History-based pruning page: pair distances, a pair's norms through a round, the rounds."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ui.charts.style import BASE_COLOR, color_for, layout

PAIR_COLORS = ("#1f5fbf", "#c0392b")

PHASE_COLORS = {"optimisation": "#8e44ad", "retraining": "#2a9d5c"}


def pair_distance_heatmap(matrix: pd.DataFrame, pairs: pd.DataFrame, layer: str) -> go.Figure:
    """A layer's pair distances (filters x filters), small ones bright; the chosen pairs boxed, on both sides."""
    labels = [str(i) for i in matrix.index]
    fig = go.Figure(
        go.Heatmap(
            z=matrix.to_numpy(),
            x=labels,
            y=labels,
            colorscale="Viridis",
            reversescale=True,
            colorbar={"title": "distance"},
            hovertemplate="filters %{y} & %{x}<br>distance %{z:.2f}<extra></extra>",
        )
    )
    ours = pairs[pairs["layer"] == layer]
    if not ours.empty:
        fig.add_trace(
            go.Scatter(
                x=[str(v) for v in ours["b"]] + [str(v) for v in ours["a"]],
                y=[str(v) for v in ours["a"]] + [str(v) for v in ours["b"]],
                mode="markers",
                name="chosen pair",
                marker={"symbol": "square-open", "size": 12, "color": "#ff2d55", "line": {"width": 2.5}},
                hovertemplate="chosen pair: filters %{y} & %{x}<extra></extra>",
            )
        )
    fig.update_xaxes(title="filter", type="category", showticklabels=len(labels) <= 30)
    fig.update_yaxes(title="filter", type="category", autorange="reversed", showticklabels=len(labels) <= 30)
    return layout(fig, f"Pair distances in {layer}: sum over epochs of |l1(i) - l1(j)|", height=520)


def pair_trajectory_chart(
    table: pd.DataFrame,
    pair: tuple[int, int],
    phases: list[tuple[float, float, str]],
    now: tuple[float, str] | None = None,
    dropped: int | None = None,
    norm: str = "l1",
) -> go.Figure:
    """Two filters' norms over training, drawn together; shaded phases of the round; the filter pruned ends in an x."""
    fig = go.Figure()
    for color, filter_index in zip(PAIR_COLORS, pair):
        rows = table[table["filter"] == filter_index].dropna(subset=[norm])
        pruned = filter_index == dropped
        name = f"filter {filter_index}" + (" (pruned)" if pruned else "")
        fig.add_trace(
            go.Scatter(
                x=rows["epoch"],
                y=rows[norm],
                mode="lines+markers",
                name=name,
                line={"color": color, "width": 3},
                marker={"size": 6},
                hovertemplate=f"{name}<br>epoch %{{x}}<br>{norm} %{{y:.3f}}<extra></extra>",
            )
        )
        if pruned and not rows.empty:
            fig.add_trace(
                go.Scatter(
                    x=[rows["epoch"].iloc[-1]],
                    y=[rows[norm].iloc[-1]],
                    mode="markers",
                    name="pruned here",
                    marker={"symbol": "x", "size": 16, "color": color, "line": {"width": 1}},
                    hoverinfo="skip",
                )
            )
    for start, end, phase in phases:  # shaded, and named in the legend (the bands are too narrow for a label)
        color = PHASE_COLORS.get(phase, BASE_COLOR)
        fig.add_vrect(x0=start, x1=end, fillcolor=color, opacity=0.15, line_width=0)
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=phase,
                marker={"symbol": "square", "size": 14, "color": color, "opacity": 0.4},
            )
        )
    if now is not None:
        line = {"color": BASE_COLOR, "dash": "dash"}
        fig.add_vline(x=now[0], line=line, annotation_text=now[1], annotation_position="top left")
    fig.update_xaxes(title="epoch (the base's training, then the rounds' optimisation and retraining)")
    fig.update_yaxes(title=f"{norm}-norm of the filter")
    return layout(fig, f"Filters {pair[0]} and {pair[1]} over training", height=460)


def hbfp_rounds_chart(table: pd.DataFrame, base_accuracy: float, lost: float = 0.01) -> go.Figure:
    """Test accuracy after each round's retraining (and just pruned, dotted) against the MACs removed so far,
    one line per criterion; a round the stop rule did not keep is an x."""
    fig = go.Figure()
    names = list(dict.fromkeys(table["criterion"]))
    for name in names:
        rows = table[table["criterion"] == name].sort_values("round")
        color = color_for(name, names)
        x = rows["macs_reduction"] * 100
        fig.add_trace(
            go.Scatter(
                x=x,
                y=rows["acc_pruned"] * 100,
                name=f"{name}: just pruned",
                mode="lines",
                line={"color": color, "width": 1.5, "dash": "dot"},
                hovertemplate=f"{name}, round %{{customdata}}<br>%{{x:.1f}}% of MACs removed<br>"
                "just pruned %{y:.1f}%<extra></extra>",
                customdata=rows["round"],
            )
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=rows["acc_final"] * 100,
                name=f"{name}: retrained",
                mode="lines+markers",
                line={"color": color, "width": 3},
                marker={
                    "size": [9 if kept else 15 for kept in rows["within_threshold"]],
                    "symbol": ["circle" if kept else "x" for kept in rows["within_threshold"]],
                },
                customdata=rows[["round", "ratio"]].to_numpy() * [1, 100],
                hovertemplate=f"{name}, round %{{customdata[0]:.0f}} (%{{customdata[1]:.0f}}% of filters)<br>"
                "%{x:.1f}% of MACs removed<br>retrained %{y:.1f}%<extra></extra>",
            )
        )
    # Legend entries, not annotations: at the left end, where every line starts, the labels sat on them.
    for accuracy, name, dash in (
        (base_accuracy, f"base {base_accuracy:.1%}", "dash"),
        (base_accuracy - lost, f"{lost:.0%} below the base", "dot"),
    ):
        fig.add_trace(
            go.Scatter(
                x=[-2, 100],
                y=[accuracy * 100] * 2,
                name=name,
                mode="lines",
                line={"color": BASE_COLOR, "dash": dash},
                hoverinfo="skip",
            )
        )
    fig.update_xaxes(title="MACs removed so far (%)", range=[-2, 100])
    fig.update_yaxes(title="test accuracy (%)")
    return layout(fig, "Rounds: accuracy against the MACs removed", height=500, legend_below=True)


# --- Class subsets and pre-training (pages/studies.py) ----------------------------------------------------
