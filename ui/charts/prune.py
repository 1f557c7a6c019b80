"""Charts of the Prune & recover page: the recovery curves, the filters kept per layer, and several ratios' curves."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from ui.charts.style import BASE_COLOR, RANDOM, color_for, layout


def recovery_chart(
    table: pd.DataFrame,
    base_accuracy: float,
    epochs: int,
    y_range: tuple[float, float] | None = None,
    pinned: pd.DataFrame | None = None,
) -> go.Figure:
    """Accuracy against fine-tuning epoch, one line per run, the base's accuracy as a dashed line (named
    in the legend, where no curve can cover it). `y_range` (percent) fixes the y axis, so that curves
    at different ratios compare by eye; `pinned` runs (the same columns) are drawn thinner and dashed."""
    fig = go.Figure()
    names = list(dict.fromkeys(table["run"]))
    for name in names:
        run = table[table["run"] == name]
        fig.add_trace(_curve(run, name, names, {"width": 3, "dash": "dot" if "mask" in name else "solid"}, 9))
    if pinned is not None:
        for name in dict.fromkeys(pinned["run"]):
            fig.add_trace(_curve(pinned[pinned["run"] == name], name, names, {"width": 2, "dash": "dash"}, 6))
    last = max([epochs, *([] if pinned is None or pinned.empty else [int(pinned["epoch"].max())])])
    fig.add_trace(
        go.Scatter(
            x=[-0.2, last + 0.2],
            y=[base_accuracy * 100] * 2,
            mode="lines",
            name=f"before pruning {base_accuracy:.1%}",
            line={"color": BASE_COLOR, "dash": "dash", "width": 2},
            hoverinfo="skip",
        )
    )
    fig.update_xaxes(title="fine-tuning epoch (0 = just pruned)", range=[-0.2, last + 0.2], dtick=1)
    fig.update_yaxes(title="test accuracy (%)", range=list(y_range) if y_range else None)
    return layout(fig, "Recovery while fine-tuning")


def _curve(run: pd.DataFrame, name: str, names: list[str], line: dict, marker_size: int) -> go.Scatter:
    cuts = run["cut"] if "cut" in run else [False] * len(run)  # a pruning cut: epoch 0, and a schedule's later cuts
    return go.Scatter(
        x=run["epoch"],
        y=run["accuracy"] * 100,
        name=name,
        mode="lines+markers",
        line={"color": color_for(name, names), **line},
        marker={"size": [marker_size + 4 if cut else marker_size for cut in cuts], "symbol": _cut_symbols(cuts)},
        hovertemplate=f"{name}<br>epoch %{{x}}<br>accuracy %{{y:.1f}}%<extra></extra>",
    )


def _cut_symbols(cuts) -> list[str]:
    """A pruning cut is drawn as a downward triangle, every other point as a dot."""
    return ["triangle-down" if cut else "circle" for cut in cuts]


def channels_chart(table: pd.DataFrame) -> go.Figure:
    """Filters kept per conv layer, one bar per run, beside the layer's original width."""
    fig = go.Figure()
    layers = list(dict.fromkeys(table["layer"]))
    original = table.drop_duplicates("layer").set_index("layer")["original"]
    fig.add_trace(
        go.Bar(
            x=layers,
            y=[original[layer] for layer in layers],
            name="before pruning",
            marker={"color": "rgba(0,0,0,0)", "line": {"color": BASE_COLOR, "width": 2}},
            hovertemplate="%{x}: %{y} filters before pruning<extra></extra>",
        )
    )
    names = list(dict.fromkeys(table["run"]))
    for name in names:
        run = table[table["run"] == name]
        fig.add_trace(
            go.Bar(
                x=run["layer"],
                y=run["kept"],
                name=f"kept by {name}",
                marker={"color": color_for(name, names)},
                hovertemplate=f"%{{x}}: {name} keeps %{{y}} filters<extra></extra>",
            )
        )
    fig.update_layout(barmode="group")
    fig.update_xaxes(title="conv layer")
    fig.update_yaxes(title="filters")
    return layout(fig, "Filters kept per layer", height=440, legend_below=True)


RATIOS_Y_RANGE = (0.0, 100.5)  # percent: the same for any set of ratios


def ratios_chart(table: pd.DataFrame, base_accuracy: float, epochs: int) -> go.Figure:
    """Recovery curves of several ratios on one chart: one colour per ratio from one colour scale (the same
    ratio, the same colour on every chart), random dashed beside the criterion. `table` is a
    `recovery_table` with `ratio` and `criterion` columns. The axes are fixed whatever the ratios (0 to
    100%, epoch 0 to `epochs`), so that two such charts put side by side read alike."""
    fig = go.Figure()
    for (ratio, criterion), run in table.groupby(["ratio", "criterion"], sort=True):
        color = sample_colorscale("Viridis", ratio * 0.85)[0]  # darker for fewer filters left; not the pale end
        name = f"{criterion} at {ratio:.0%}"
        dash = "dash" if criterion == RANDOM else "solid"
        fig.add_trace(_curve(run, name, [name], {"width": 3, "dash": dash, "color": color}, 9))
    fig.add_trace(
        go.Scatter(
            x=[-0.2, epochs + 0.2],
            y=[base_accuracy * 100] * 2,
            mode="lines",
            name=f"before pruning {base_accuracy:.1%}",
            line={"color": BASE_COLOR, "dash": "dash", "width": 2},
            hoverinfo="skip",
        )
    )
    fig.update_xaxes(title="fine-tuning epoch (0 = just pruned)", range=[-0.2, epochs + 0.2], dtick=1)
    fig.update_yaxes(title="test accuracy (%)", range=list(RATIOS_Y_RANGE))
    return layout(fig, "Recovery at several ratios (random dashed)", height=460, legend_below=True)
