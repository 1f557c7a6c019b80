"""Class subsets and pre-training: how much further a network can be pruned when only a few classes matter
(Mittal et al.), and whether starting from pre-trained weights makes it more prunable (Hubens et al.)."""

import streamlit as st

from ui import widgets
from ui.studies.class_subset_tab import class_subset_tab
from ui.studies.pretraining_tab import pretraining_tab

config, device = widgets.sidebar()
base = widgets.base_or_stop(config, device)

st.title("Class subsets & pre-training")
subset_tab, pretrained_tab = st.tabs(["Class subset", "Pre-trained vs scratch"], key="study", bind="query-params")
if subset_tab.open:
    with subset_tab:
        class_subset_tab(base, device)
if pretrained_tab.open:
    with pretrained_tab:
        pretraining_tab(base, device)
