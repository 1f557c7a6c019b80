"""Filter-norm histories: every filter's norm over the base's training, and which filters pruning picks."""

import streamlit as st

from plasticity.errors import PlasticityError
from plasticity.runs import Base
from plasticity.views import filters_pruned_by, norm_matrix, norm_table
from ui import widgets
from ui.charts import norms as charts
from ui.plain import plain

config, device = widgets.sidebar()
base = widgets.base_or_stop(config, device)


@st.cache_data(show_spinner="Finding the filters pruning would remove...", max_entries=64)
def pruned_filters(_base: Base, base_key: str, device: str, criterion: str, ratio: float) -> dict[str, list[int]]:
    return filters_pruned_by(_base, criterion, ratio)


st.title("Filter-norm histories")
st.caption(
    "Each filter's weight norm at the end of every training epoch of the base model. "
    "Filters with small norms are the ones a norm criterion prunes; random pruning ignores them."
)
layer_col, norm_col, criterion_col, ratio_col = st.columns([2, 1, 2, 3])
layers = list(base.history.width)
with layer_col:
    layer = widgets.kept(st.selectbox, "Layer", layers, key="layer", default={})
with norm_col:
    norm = widgets.kept(st.radio, "Norm", ["l1", "l2"], horizontal=True, key="norm", default={})
with criterion_col:
    criterion = widgets.criterion_select(base)
with ratio_col:
    ratio = widgets.ratio_slider()

marks: dict[str, set[int]] = {}
for name in (criterion, "random"):
    try:
        marks[name] = set(pruned_filters(base, base.config.key, device, name, ratio).get(layer, []))
    except PlasticityError as exc:
        st.error(f"{name} cannot prune this model: {plain(exc)}")

width = base.history.width[layer]
summary = [f"**{name}** prunes {len(picked)} of {width} filters" for name, picked in marks.items()]
if len(marks) == 2:
    summary.append(f"they agree on {len(marks[criterion] & marks['random'])}")
st.markdown(f"In `{layer}` at {ratio:.0%}: " + "; ".join(summary) + ".")

widgets.show_chart(charts.norm_lines(norm_table(base.history, layer, norm), marks, norm), "filter-norm-lines")
sort = widgets.kept(st.toggle, "Sort the heatmap by the final norm", key="sort_by_final", default={"value": True})
matrix = norm_matrix(base.history, layer, norm, sort_by_final=sort)
widgets.show_chart(charts.norm_heatmap(matrix, marks, norm), "filter-norm-heatmap")
