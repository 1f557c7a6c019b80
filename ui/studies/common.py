"""What both study tabs share: the accuracy columns of their tables and the tolerance of "as good"."""

import streamlit as st

from plasticity.runs import Base
from ui import widgets

TOLERANCE = 0.01  # accuracy a pruned model may lose and still count as "as good": one point
ACCURACY_COLUMNS = {
    "ratio": widgets.percent_column("filters pruned"),
    "acc_base": widgets.percent_column("unpruned"),
    "acc_pruned": widgets.percent_column("just pruned"),
    "acc_final": widgets.percent_column("after fine-tuning"),
    "epochs": st.column_config.NumberColumn("fine-tuning epochs"),
    "macs_pruned": st.column_config.NumberColumn("MACs", format="localized"),
    "params_pruned": st.column_config.NumberColumn("parameters", format="localized"),
    "params_removed": widgets.percent_column("parameters removed"),
    "macs_removed": widgets.percent_column("MACs removed"),
}


def known_classes(base: Base) -> list[int]:
    """The classes the base was trained on."""
    return list(base.config.classes or range(base.data.num_classes))
