"""Home: what pruning and plasticity are, the base model in use, and training a new base.

Its first screen needs no PyTorch: until the library has loaded in the background (ui/startup.py) it
shows the shipped default from its card, then the whole page reruns with the pickers and the form.
"""

import streamlit as st

from plasticity.card import BaseCard, default_card
from ui import sketch, startup
from ui.plain import plain

INTRO = """
A convolutional network learns **filters**: small pattern detectors, many per layer.
**Pruning** removes whole filters, so the network gets smaller and faster, and at first less accurate.
**Plasticity** is what happens next: a few epochs of fine-tuning and the remaining filters take over
the work of the removed ones, and the accuracy comes back.

Which filters should go? A **criterion** scores them (for example the *l1*-norm of a filter's weights:
small weights, small effect), and **random** pruning is the honest baseline to beat.

The picture shows the base model's first-layer filters growing while it trained: each line is one filter.
"""


def overview(card: BaseCard | None, latency_ms: float | None) -> None:
    """The explanation, the picture of the base's filters and its numbers."""
    st.title("Plasticity: how a CNN recovers after pruning")
    intro, picture = st.columns([2, 3])
    with intro:
        st.markdown(INTRO)
        st.page_link("pages/prune.py", label="Prune it and watch it recover", icon=":material/content_cut:")
    if card is None:
        return
    picture.image(sketch.norm_lines_svg(card), width="stretch")
    st.subheader(f"Base model: {plain(card.label)}")
    accuracy, macs, params, latency = st.columns(4)
    accuracy.metric("Test accuracy", f"{card.acc:.1%}")
    macs.metric("MACs per image", f"{card.macs / 1e6:.2f} M")
    params.metric("Parameters", f"{card.params:,}")
    latency.metric("Latency (256 images)", "loading..." if latency_ms is None else f"{latency_ms:.1f} ms")


@st.fragment(run_every=0.5)
def rerun_when_loaded() -> None:
    if startup.library_loaded():
        st.rerun()
    st.caption(":material/hourglass_top: Loading PyTorch: the model pickers and training appear in a moment.")


def first_screen() -> None:
    """Before the library has loaded: the shipped default, when it is the base asked for."""
    card = default_card()
    asked = st.session_state.get("base") or st.query_params.get("base")
    overview(card if card is not None and asked in (None, card.key) else None, latency_ms=None)
    rerun_when_loaded()


def whole_page() -> None:
    # Imported here, not at the top: the first screen must not wait for PyTorch.
    from plasticity.card import card_of
    from plasticity.views import base_label
    from ui import training, widgets

    config, device = widgets.sidebar()
    base = widgets.base_or_stop(config, device)
    card = widgets.memo("home-card", base.config.key, lambda: card_of(base, base_label(base.config)))
    overview(card, base.result["latency_ms"])
    training.new_base_form(device)


if startup.library_loaded():
    whole_page()
else:
    first_screen()
