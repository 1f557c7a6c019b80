"""What both study tabs share: the accuracy columns of their tables and the tolerance of "as good"."""

import streamlit as st

from plasticity.runs import Base

TOLERANCE = 0.01  # accuracy a pruned model may lose and still count as "as good": one point
ACCURACY_COLUMNS = {
    "ratio": st.column_config.NumberColumn("filters pruned", format="percent"),
    "acc_base": st.column_config.NumberColumn("unpruned", format="percent"),
    "acc_pruned": st.column_config.NumberColumn("just pruned", format="percent"),
    "acc_final": st.column_config.NumberColumn("after fine-tuning", format="percent"),
    "epochs": st.column_config.NumberColumn("fine-tuning epochs"),
    "macs_pruned": st.column_config.NumberColumn("MACs", format="localized"),
    "params_pruned": st.column_config.NumberColumn("parameters", format="localized"),
    "params_removed": st.column_config.NumberColumn("parameters removed", format="percent"),
    "macs_removed": st.column_config.NumberColumn("MACs removed", format="percent"),
}


def known_classes(base: Base) -> list[int]:
    """The classes the base was trained on."""
    return list(base.config.classes or range(base.data.num_classes))
