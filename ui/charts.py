"""Plotly figures for the dashboard, each built from one table of `plasticity.views`."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

RANDOM = "random"
PALETTE = ["#1f5fbf", "#2a9d5c", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d"]
RANDOM_COLOR = "#f08a24"
BASE_COLOR = "#555555"
KEPT_COLOR = "rgba(150, 150, 150, 0.45)"
FONT = {"size": 15}


def color_for(name: str, names: list[str]) -> str:
    """Random pruning is always orange; the others take the palette in order."""
    if name.startswith(RANDOM):
        return RANDOM_COLOR
    others = [n for n in names if not n.startswith(RANDOM)]
    return PALETTE[others.index(name) % len(PALETTE)] if name in others else PALETTE[0]


def _layout(fig: go.Figure, title: str, height: int = 420, legend_below: bool = False) -> go.Figure:
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


def _band(x: list, upper: list, lower: list, color: str, group: str) -> go.Scatter:
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


def recovery_chart(table: pd.DataFrame, base_accuracy: float, epochs: int) -> go.Figure:
    """Accuracy against fine-tuning epoch, one line per run, the base's accuracy as a dashed line."""
    fig = go.Figure()
    names = list(dict.fromkeys(table["run"]))
    for name in names:
        run = table[table["run"] == name]
        fig.add_trace(
            go.Scatter(
                x=run["epoch"],
                y=run["accuracy"] * 100,
                name=name,
                mode="lines+markers",
                line={"color": color_for(name, names), "width": 3, "dash": "dot" if "mask" in name else "solid"},
                marker={"size": 9},
                hovertemplate=f"{name}<br>epoch %{{x}}<br>accuracy %{{y:.1f}}%<extra></extra>",
            )
        )
    fig.add_hline(
        y=base_accuracy * 100,
        line={"color": BASE_COLOR, "dash": "dash"},
        annotation_text=f"before pruning {base_accuracy:.1%}",
        annotation_position="top left",
    )
    fig.update_xaxes(title="fine-tuning epoch (0 = just pruned)", range=[-0.2, epochs + 0.2], dtick=1)
    fig.update_yaxes(title="test accuracy (%)")
    return _layout(fig, "Recovery while fine-tuning")


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
    return _layout(fig, "Filters kept per layer", height=440, legend_below=True)


def norm_lines(table: pd.DataFrame, marks: dict[str, set[int]], norm: str = "l1") -> go.Figure:
    """Every filter's norm over the epochs; filters in `marks` coloured by who would prune them."""
    fig = go.Figure()
    names = list(marks)
    shown: set[str] = set()
    for filter_index, rows in table.groupby("filter", sort=True):
        groups = [name for name in names if filter_index in marks[name]]
        if not names:  # nothing to mark (the Home page's picture): one colour, no legend
            group, color = "a filter", "rgba(31, 95, 191, 0.55)"
        elif len(groups) > 1:
            group, color = "pruned by both", "#8e44ad"
        elif groups:
            group, color = groups[0], color_for(groups[0], names)
        else:
            group, color = "kept by both", KEPT_COLOR
        fig.add_trace(
            go.Scatter(
                x=rows["epoch"],
                y=rows[norm],
                mode="lines",
                name=group,
                legendgroup=group,
                showlegend=bool(names) and group not in shown,
                line={"color": color, "width": 2.5 if groups else 1.5},
                customdata=[filter_index] * len(rows),
                hovertemplate=f"filter %{{customdata}}<br>epoch %{{x}}<br>{norm} %{{y:.3f}}<br>{group}<extra></extra>",
            )
        )
        shown.add(group)
    fig.update_xaxes(title="training epoch (0 = initialisation)", dtick=1)
    fig.update_yaxes(title=f"{norm}-norm of the filter")
    return _layout(fig, f"{norm}-norm of every filter while the base trained", height=460)


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
    height = max(380, 14 * len(labels) + 140)
    fig.update_yaxes(autorange="reversed", showticklabels=len(labels) <= 64, row=1, col=1)
    fig.update_xaxes(title="training epoch", row=1, col=1)
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=names, row=1, col=2)
    return _layout(fig, f"{norm}-norm heatmap: filters x epochs", height=height)


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
                _band(x, (rows["max"] * 100).tolist(), (rows["min"] * 100).tolist(), color, name),
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
    return _layout(fig, "Random pruning vs criteria (band: min to max over seeds)", height=480, legend_below=True)


MASK_MARKS = {"best": "#2a9d5c", "median": "#1f5fbf", "worst": "#c0392b"}


def mask_accuracy_histogram(val_accs: list[float], marks: dict[str, float], base_accuracy: float) -> go.Figure:
    """How the N random masks score on validation before retraining, with the best, median and worst
    marked and the unpruned base as a dashed line."""
    fig = go.Figure(
        go.Histogram(
            x=[acc * 100 for acc in val_accs],
            xbins={"size": 2},
            marker={"color": "rgba(31, 95, 191, 0.35)", "line": {"color": "#1f5fbf", "width": 1}},
            name="masks",
            showlegend=False,
            hovertemplate="validation accuracy %{x}%<br>%{y} masks<extra></extra>",
        )
    )
    for position, (name, acc) in enumerate(marks.items()):
        fig.add_vline(
            x=acc * 100,
            line={"color": MASK_MARKS.get(name, BASE_COLOR), "width": 3},
            annotation_text=f"{name} {acc:.1%}",
            annotation_position="top left" if name == "worst" else "top right",
            annotation_y=1.0 - 0.09 * position,
            annotation_font={"color": MASK_MARKS.get(name, BASE_COLOR), "size": 14},
        )
    fig.add_vline(x=base_accuracy * 100, line={"color": BASE_COLOR, "dash": "dash"})
    fig.update_xaxes(title=f"validation accuracy (%), dashed: before pruning {base_accuracy:.1%}")
    fig.update_yaxes(title="masks")
    fig.update_layout(bargap=0.05)
    return _layout(fig, f"Validation accuracy of the {len(val_accs)} random masks, before retraining", height=400)


def mask_layer_image(layer: str, image: list[list[bool]], kernel: tuple[int, int], sparsity: float) -> go.Figure:
    """One conv layer's weights as kept (dark) or removed (light): one k x k tile per kernel, output
    filters across, input channels down."""
    kh, kw = kernel
    rows, cols = len(image), len(image[0]) if image else 0
    where = [[[c // kw, r // kh] for c in range(cols)] for r in range(rows)]
    fig = go.Figure(
        go.Heatmap(
            z=[[1 if kept else 0 for kept in row] for row in image],
            customdata=where,
            colorscale=[[0.0, "#eeeeee"], [1.0, "#1f5fbf"]],
            zmin=0,
            zmax=1,
            showscale=False,
            hovertemplate="filter %{customdata[0]}, input %{customdata[1]}: %{z}<extra>1 kept, 0 removed</extra>",
        )
    )
    fig.update_xaxes(title=f"output filters ({cols // kw}), {kh}x{kw} kernel each", showticklabels=False)
    fig.update_yaxes(title=f"inputs ({rows // kh})", showticklabels=False, autorange="reversed")
    height = 110 + int(min(360, max(40, 420 * rows / max(1, cols))))  # near-square tiles in a half-page column
    fig = _layout(fig, f"{layer}: {sparsity:.0%} of its weights removed", height=height)
    fig.update_layout(margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return fig


# --- History-based filter pruning (pages/hbfp.py) ---------------------------------------------------------

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
    return _layout(fig, f"Pair distances in {layer}: sum over epochs of |l1(i) - l1(j)|", height=520)


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
    return _layout(fig, f"Filters {pair[0]} and {pair[1]} over training", height=460)


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
    fig.add_hline(
        y=base_accuracy * 100,
        line={"color": BASE_COLOR, "dash": "dash"},
        annotation_text=f"base {base_accuracy:.1%}",
        annotation_position="top left",
    )
    fig.add_hline(
        y=(base_accuracy - lost) * 100,
        line={"color": BASE_COLOR, "dash": "dot"},
        annotation_text=f"{lost:.0%} below the base",
        annotation_position="bottom left",
    )
    fig.update_xaxes(title="MACs removed so far (%)", range=[-2, 100])
    fig.update_yaxes(title="test accuracy (%)")
    return _layout(fig, "Rounds: accuracy against the MACs removed", height=460)


# --- Class subsets and pre-training (pages/studies.py) ----------------------------------------------------

ALL_CLASSES = "all classes"  # plasticity.study_views.ALL_CLASSES: drawn dashed
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
    return _layout(fig, "Pruned for a few classes (solid) vs for all classes (dashed)", height=480, legend_below=True)


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
                _band(x, [m + s for m, s in zip(mean, spread)], [m - s for m, s in zip(mean, spread)], color, modality),
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
    return _layout(fig, title, height=480, legend_below=True)
