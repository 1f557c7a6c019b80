"""Presenter mode on the dashboard's charts: larger fonts, thicker lines, the legend beside the plot."""

import pandas as pd

from ui.charts import prune as charts
from ui.charts.style import FONT, color_for, presenter


def test_presenter_mode_enlarges_every_kind_of_chart_and_keeps_the_concept_colours():
    recovery = charts.recovery_chart(
        pd.DataFrame(
            {"run": ["l1", "l1", "random", "random"], "epoch": [0, 1, 0, 1], "accuracy": [0.9, 0.95, 0.7, 0.9]}
        ),
        0.969,
        1,
        y_range=(0, 100.5),
    )
    bars = charts.channels_chart(
        pd.DataFrame({"run": ["l1", "random"], "layer": ["conv1", "conv1"], "kept": [10, 10], "original": [20, 20]})
    )
    for fig in (recovery, bars):
        shown = presenter(fig)
        assert shown.layout.font.size > FONT["size"] and shown.layout.legend.orientation == "v"
        assert shown.layout.height > fig.layout.height
    lines = presenter(recovery).data
    assert lines[0].line.width > recovery.data[0].line.width and list(presenter(recovery).layout.yaxis.range) == [
        0,
        100.5,
    ]
    assert lines[1].line.color == color_for("random") == color_for("random at 90%") != color_for("l1, masked")
