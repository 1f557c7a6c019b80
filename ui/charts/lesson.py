"""The chart of the lesson's last step: every run of the lesson, just pruned and after fine-tuning."""

from __future__ import annotations

import plotly.graph_objects as go

from ui.charts.style import BASE_COLOR, color_for, layout


def summary_chart(results: dict[str, dict], base_accuracy: float) -> go.Figure:
    """One pair of bars per run (named "l1 at 50%"): pale just pruned, solid after fine-tuning, in the
    criterion's colour; the unpruned base as a dashed line."""
    names = list(results)
    colors = [color_for(name.split(" at ")[0]) for name in names]
    fig = go.Figure()
    for stage, field, opacity in (("just pruned", "acc_pruned", 0.4), ("after fine-tuning", "acc_final", 1.0)):
        accs = [results[name].get(field) for name in names]
        fig.add_trace(
            go.Bar(
                x=names,
                y=[None if acc is None else acc * 100 for acc in accs],
                name=stage,
                marker={"color": colors, "opacity": opacity},
                text=["" if acc is None else f"{acc:.1%}" for acc in accs],
                textposition="outside",
                hovertemplate=f"%{{x}}, {stage}: %{{y:.1f}}%<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=names,
            y=[base_accuracy * 100] * len(names),
            mode="lines",
            name=f"before pruning {base_accuracy:.1%}",
            line={"color": BASE_COLOR, "dash": "dash", "width": 2},
            hoverinfo="skip",
        )
    )
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="test accuracy (%)", range=[0, 112])
    return layout(fig, "The lesson's runs: just pruned (pale) and after fine-tuning", height=460, legend_below=True)
