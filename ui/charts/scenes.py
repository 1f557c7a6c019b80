"""Charts of the detection and segmentation page: mAP or mean IoU right after pruning and while fine-tuning."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ui.charts.style import BASE_COLOR, color_for, layout


def recovery_chart(table: pd.DataFrame, base_score: float, score_name: str, epochs: int) -> go.Figure:
    """The score against fine-tuning epoch (0: just pruned), one line per run, the base's dashed."""
    fig = go.Figure()
    names = list(dict.fromkeys(table["run"]))
    for name in names:
        run = table[table["run"] == name]
        fig.add_trace(
            go.Scatter(
                x=run["epoch"],
                y=run["score"],
                name=name,
                mode="lines+markers",
                line={"color": color_for(name, names), "width": 3},
                marker={"size": 9},
                hovertemplate=f"{name}<br>epoch %{{x}}<br>{score_name} %{{y:.3f}}<extra></extra>",
            )
        )
    fig.add_hline(
        y=base_score,
        line={"color": BASE_COLOR, "dash": "dash"},
        annotation_text=f"before pruning {base_score:.3f}",
        annotation_position="top left",
    )
    fig.update_xaxes(title="fine-tuning epoch (0 = just pruned)", range=[-0.2, epochs + 0.2], dtick=1)
    fig.update_yaxes(title=f"test {score_name}", rangemode="tozero")
    return layout(fig, f"{score_name} while fine-tuning")
