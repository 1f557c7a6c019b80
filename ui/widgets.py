"""Widgets every page shares: the base and device pickers, the pruning settings, live job views.

Settings are widgets with a fixed key, bound to the URL's query parameters (a shared link opens
the same view) and kept for the whole session (they keep their values across pages).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from typing import TypeVar

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from plasticity.errors import PlasticityError
from plasticity.pruning.criteria import list_criteria
from plasticity.runs import Base, TrainConfig, get_base
from plasticity.store import RunStore, plasticity_home
from plasticity.views import DEFAULT_BASE, base_label, stored_bases
from ui import limits

KEPT = "_kept_settings"  # widget key -> last value this session, to restore it on any page
MEMO = "_memo"  # name -> (signature, object) of this session's charts
T = TypeVar("T")
PROMPT_SECONDS = 0.4  # how long a rerun waits for a job's first, quick result before drawing


@st.cache_resource
def _store(home: str) -> RunStore:
    return RunStore(home)


def run_store() -> RunStore:
    return _store(str(plasticity_home()))


@st.cache_resource(show_spinner="Loading the base model...", max_entries=8)
def _load_base(config_json: str, device: str, home: str) -> Base:
    # Shared by every session: pages must never prune it in place (prune_model copies it).
    return get_base(TrainConfig.from_dict(json.loads(config_json)), _store(home), device)


def kept(widget: Callable, label: str, *args, key: str, default: dict, **kwargs):
    """`widget` bound to the URL's query parameter `key`, and keeping its value across pages.

    `default` names the widget's own default argument (e.g. {"value": 3}). It is passed even when a
    kept value is restored, since Streamlit leaves a setting out of the URL when it equals the
    widget's default: without it a restored minimum (one seed, 0%) would vanish from a shared link.
    """
    values = st.session_state.setdefault(KEPT, {})
    if key in values:  # set on this or another page earlier in the session: that value wins
        st.session_state[key] = values[key]
    value = widget(
        label,
        *args,
        key=key,
        bind="query-params",
        persist_state="session",
        on_change=_remember,
        args=(key,),
        **default,
        **kwargs,
    )
    values[key] = value
    return value


def _remember(key: str) -> None:
    st.session_state[KEPT][key] = st.session_state[key]


def devices() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def sidebar() -> tuple[TrainConfig, str]:
    """The base model and device pickers in the sidebar of every page."""
    bases = {config.key: config for config in stored_bases(run_store())}
    if "next_base" in st.session_state:  # a base trained on the Home page becomes the selection
        st.session_state.setdefault(KEPT, {})["base"] = st.session_state.pop("next_base")
    with st.sidebar:
        wanted = st.query_params.get("base")
        if wanted and wanted not in bases:
            st.warning(f"The link names a base model ({wanted}) that is not in this run store; showing the default.")
        key = kept(
            st.selectbox, "Base model", list(bases), format_func=lambda k: base_label(bases[k]), key="base", default={}
        )
        device = kept(st.selectbox, "Device", devices(), key="device", default={})
        if torch.cuda.is_available():
            st.caption(f"CUDA is available: {torch.cuda.get_device_name(0)}")
        else:
            st.caption("CUDA is not available here: everything runs on the CPU.")
        st.caption(f"Runs are kept in `{plasticity_home()}`")
    return bases.get(key, DEFAULT_BASE), device


def base_or_stop(config: TrainConfig, device: str) -> Base:
    """The selected base, or an error in the page (and nothing more of it) when it cannot load."""
    try:
        return _load_base(json.dumps(config.to_dict(), sort_keys=True), device, str(plasticity_home()))
    except PlasticityError as exc:
        st.error(f"The base model {base_label(config)} could not be loaded: {exc}")
        st.stop()


def ratio_slider() -> float:
    percent = kept(
        st.slider,
        "Filters pruned in every conv layer",
        min_value=0,
        max_value=95,
        step=5,
        format="%d%%",
        key="ratio",
        default={"value": 50},
    )
    return percent / 100


def criterion_select(label: str = "Criterion") -> str:
    criteria = [name for name in list_criteria() if name != "random"]
    return kept(st.selectbox, label, criteria, key="criterion", default={"index": criteria.index("l1")})


def finetune_epochs_slider() -> int:
    return kept(
        st.slider,
        "Fine-tuning epochs",
        min_value=1,
        max_value=limits.epochs(10),
        key="finetune_epochs",
        default={"value": limits.epochs(3)},
    )


def ratios_select(key: str, default: list[int]) -> list[float]:
    """Several pruning ratios, picked as percentages in 5% steps; sorted fractions ([] when none)."""
    percents = kept(st.multiselect, "Filters pruned (%)", list(range(5, 100, 5)), key=key, default={"default": default})
    return sorted(p / 100 for p in percents)


def seeds_input(key: str, default: int) -> list[int]:
    """How many seeds to run, as the seeds themselves: 0, 1, ..."""
    count = kept(st.number_input, "Seeds", min_value=1, max_value=10, key=key, default={"value": default})
    return list(range(int(count)))


def memo(name: str, signature: Hashable, build: Callable[[], T]) -> T:
    """`build()`, made again only when `signature` changes: a live view redraws twice a second, and
    rebuilding plotly figures each time would take the CPU from the training it shows."""
    memos = st.session_state.setdefault(MEMO, {})
    if name not in memos or memos[name][0] != signature:
        memos[name] = (signature, build())
    return memos[name][1]


def show_chart(fig: go.Figure, name: str) -> None:
    """A plotly chart whose modebar camera button saves a PNG named after the chart."""
    config = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "filename": name, "scale": 2}}
    st.plotly_chart(fig, config=config, key=f"chart-{name}")


def formatted_costs(costs: pd.DataFrame) -> pd.DataFrame:
    """`plasticity.views.cost_table` with units a reader takes in at a glance."""
    formats = {
        "accuracy just pruned": "{:.1%}",
        "accuracy after fine-tuning": "{:.1%}",
        "MACs": "{:,.0f}",
        "parameters": "{:,.0f}",
        "non-zero parameters": "{:,.0f}",
        "latency (ms / 256 images)": "{:.1f}",
        "latency, middle half of the repeats (ms)": "{0[0]:.1f} to {0[1]:.1f}",
    }

    def cell(row: pd.Series, value) -> str:
        return "–" if not isinstance(value, list) and pd.isna(value) else formats[row.name].format(value)

    return costs.apply(lambda row: row.map(lambda value: cell(row, value)), axis=1)
