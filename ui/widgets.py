"""Widgets every page shares: the base and device pickers, the pruning settings, live job views.

Settings are widgets with a fixed key, written to the URL's query parameters on every run (a shared
link opens the same view; ui/links.py reads it back) and kept for the whole session (they keep their
values across pages).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from typing import TypeVar

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch
from streamlit.runtime.scriptrunner import get_script_run_ctx

from plasticity.errors import PlasticityError
from plasticity.pruning.criteria import list_criteria, unusable_criteria
from plasticity.runs import Base, TrainConfig, get_base
from plasticity.store import RunStore, plasticity_home
from plasticity.views import DEFAULT_BASE, base_label, stored_bases
from ui import limits, links
from ui.charts import style
from ui.plain import plain

KEPT = "_kept_settings"  # widget key -> last value this session, to restore it on any page
WRITTEN = "_written_to_url"  # widget key -> the query parameter's values this session last wrote
NOTICES = "_link_notices"  # page -> the lines saying which values of the link it was opened with were ignored
VISIT = "_visit"  # (page, the keys of the widgets shown since the session arrived on it)
NOTICE_SLOT = "_notice_slot"  # this run's place for those lines
_UNSET = object()
MEMO = "_memo"  # name -> (signature, object) of this session's charts
T = TypeVar("T")
PRESENTER_FONT_PX = 21  # the page's root font size in presenter mode (Streamlit's own is 16)
BASE_LABEL_FITS = 30  # characters of a base's name that the sidebar's picker shows whole
PROMPT_SECONDS = 1.5  # how long a rerun waits for a job's first, quick result before drawing the rest (asleep:
# it costs the server nothing, and the figures show the moment they are computed, not at the next redraw)


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
    """`widget`, its value kept for the whole session (it follows the user across pages) and written to
    the URL's query parameter `key` on every run, so a copied link opens the same view.

    A value in the URL as the session arrives on the page (a link being opened) wins, when it fits the
    widget; one that does not fit is ignored with a line in the page. `default` names the widget's
    own default argument (e.g. {"value": 3}).
    """
    link = links.link_for(widget, args, kwargs)
    values = st.session_state.setdefault(KEPT, {})
    written = st.session_state.setdefault(WRITTEN, {})
    arriving = _arrive(key)
    in_url = st.query_params.get_all(key)
    # A link is read when the session arrives on the page. On a rerun of the same page the URL holds only
    # what this session wrote there, and possibly a stale value: a key press's rerun carries the URL the
    # browser showed at the press, before the previous press's rerun had written its value. Reading that as
    # a link sent the slider back a step (4 quick presses from 50% landed on 35%).
    if in_url and arriving and in_url != written.get(key):
        try:
            values[key] = link.read(in_url)
        except ValueError as exc:
            _notice(f"{'&'.join(f'{key}={item}' for item in in_url)} ignored: {exc}")
    for state in (values, st.session_state):
        if key in state and not link.fits(state[key]):
            del state[key]  # no longer offered (another base's layers, a round that is gone)
    # Set only on arrival or when it differs: every assignment makes the browser take the value again, and
    # a rerun still on its way would send the slider back a step the user has moved on from.
    if key in values and (arriving or st.session_state.get(key, _UNSET) != values[key]):
        st.session_state[key] = values[key]
    value = widget(label, *args, key=key, on_change=_remember, args=(key,), **default, **kwargs)
    values[key] = value
    written[key] = link.write(value)
    if in_url != written[key]:
        st.query_params[key] = written[key]
    return value


def _arrive(key: str) -> bool:
    """Whether this is the widget's first run since the session arrived on this page (a new session, the
    sidebar, the browser's Back): counted per widget, so a run cut short by the next one still reads the link
    for the widgets it did not reach."""
    page = get_script_run_ctx().page_script_hash
    visit = st.session_state.get(VISIT)
    if visit is None or visit[0] != page:
        st.session_state[VISIT] = visit = (page, set())
    arriving = key not in visit[1]
    visit[1].add(key)
    return arriving


def _remember(key: str) -> None:
    st.session_state[KEPT][key] = st.session_state[key]
    st.session_state.pop(NOTICES, None)  # the user has moved on from the link that was opened


def notices_slot() -> None:
    """Where this page says which link values were ignored: at the top of the page, above its title."""
    st.session_state[NOTICE_SLOT] = slot = st.container()
    page = get_script_run_ctx().page_script_hash
    for line in st.session_state.get(NOTICES, {}).get(page, []):
        slot.text(line)


def _notice(line: str) -> None:
    page = get_script_run_ctx().page_script_hash
    st.session_state.setdefault(NOTICES, {}).setdefault(page, []).append(line)
    st.session_state.get(NOTICE_SLOT, st).text(line)


def devices() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def sidebar() -> tuple[TrainConfig, str]:
    """The base model and device pickers in the sidebar of every page."""
    try:
        bases = {config.key: config for config in stored_bases(run_store())}
    except PlasticityError as exc:  # a store that cannot be read (damaged, a file for a folder): say what to do
        st.error(plain(exc))
        st.stop()
    if "next_base" in st.session_state:  # a base trained on the Home page becomes the selection
        st.session_state.setdefault(KEPT, {})["base"] = st.session_state.pop("next_base")
    notices_slot()
    with st.sidebar:
        key = kept(
            st.selectbox, "Base model", list(bases), format_func=lambda k: base_label(bases[k]), key="base", default={}
        )
        if len(label := base_label(bases.get(key, DEFAULT_BASE))) > BASE_LABEL_FITS:
            st.caption(label)  # the picker cuts a long name short
        device = kept(st.selectbox, "Device", devices(), key="device", default={})
        presenter_toggle()
        if torch.cuda.is_available():
            st.caption(f"CUDA is available: {torch.cuda.get_device_name(0)}")
        else:
            st.caption("CUDA is not available here: everything runs on the CPU.")
        st.caption(f"Runs are kept in {plain(plasticity_home())}")
    return bases.get(key, DEFAULT_BASE), device


def base_or_stop(config: TrainConfig, device: str) -> Base:
    """The selected base, or an error in the page (and nothing more of it) when it cannot load."""
    try:
        return _load_base(json.dumps(config.to_dict(), sort_keys=True), device, str(plasticity_home()))
    except PlasticityError as exc:
        st.error(f"The base model {plain(base_label(config))} could not be loaded: {plain(exc)}")
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


def usable_criteria(base: Base, exclude: tuple[str, ...] = ()) -> tuple[list[str], str | None]:
    """The criteria that can prune `base`, and a line saying which are not offered and why (None if all are)."""
    unusable = unusable_criteria(base.model)
    offered = [name for name in list_criteria() if name not in unusable and name not in exclude]
    why = "; ".join(f"{name} is not offered: {reason}" for name, reason in unusable.items())
    return offered, why or None


def criterion_select(base: Base, label: str = "Criterion") -> str:
    """One criterion to prune `base` with beside random (random itself is not offered)."""
    criteria, why = usable_criteria(base, exclude=("random",))
    return kept(st.selectbox, label, criteria, key="criterion", default={"index": criteria.index("l1")}, help=why)


def criteria_select(base: Base, key: str, default: list[str], label: str = "Criteria") -> list[str]:
    """Several criteria to prune `base` with, random among them."""
    criteria, why = usable_criteria(base)
    return kept(st.multiselect, label, criteria, key=key, default={"default": default}, help=why)


def finetune_epochs_slider() -> int:
    return kept(
        st.slider,
        "Fine-tuning epochs",
        min_value=1,
        max_value=limits.epochs(10),
        key="finetune_epochs",
        default={"value": limits.epochs(3)},
    )


def schedule_select(epochs: int) -> str:
    """One-shot, or one cut per fine-tuning epoch in equal steps (iterative) or most of it first (AGP), as
    the schedule's name (`iterative:3`)."""
    shape = kept(
        st.selectbox,
        "Schedule",
        ["one-shot", "iterative", "agp"],
        key="schedule",
        default={"index": 0},
        help="Reach the ratio in one cut, or in one cut per fine-tuning epoch: in equal steps (iterative) or "
        "most of it first (AGP, Zhu & Gupta). Same final filters, same fine-tuning budget.",
    )
    return shape if shape == "one-shot" else f"{shape}:{epochs}"


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
    """A plotly chart whose modebar camera button saves a PNG named after the chart (for a projector in
    presenter mode)."""
    config = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "filename": name, "scale": 2}}
    if presenting():
        fig = style.presenter(fig)
    st.plotly_chart(fig, config=config, key=f"chart-{name}")


def presenting() -> bool:
    return bool(st.session_state.get(KEPT, {}).get("presenter"))


def presenter_toggle() -> None:
    """Presenter mode: the whole page in larger type, and charts with large fonts and thick lines."""
    if kept(st.toggle, "Presenter mode", key="presenter", default={"value": False}, help=presenter_toggle.__doc__):
        st.html(f"<style>html {{ font-size: {PRESENTER_FONT_PX}px; }}</style>")


def percent_column(label: str) -> st.column_config.NumberColumn:
    """A table column of fractions shown as percentages with one decimal, every row alike (96.9%, 96.0%)."""
    return st.column_config.NumberColumn(label, format="percent", step=0.001)


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

    def cell(row: pd.Series, value) -> str | None:
        # A missing value stays None: the table draws it as every other table does (Streamlit's grey "None").
        return None if not isinstance(value, list) and pd.isna(value) else formats[row.name].format(value)

    return costs.apply(lambda row: row.map(lambda value: cell(row, value)), axis=1)
