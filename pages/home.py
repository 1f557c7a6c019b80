"""Home: what pruning and plasticity are, the base model in use, and training a new base.

Its first screen needs no PyTorch: until the library has loaded in the background (ui/startup.py) it
shows the shipped default from its card, then the whole page reruns with the pickers and the form.
"""

import streamlit as st

from plasticity.card import BaseCard, default_card
from ui import sketch, startup

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
    st.subheader(f"Base model: {card.label}")
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
    from plasticity.data import list_datasets
    from plasticity.errors import PlasticityError
    from plasticity.experiment import TrainConfig, dataset_on
    from plasticity.jobs import JobState, start_job, train_work
    from plasticity.models import list_models
    from plasticity.views import base_label
    from ui import widgets

    config, device = widgets.sidebar()
    base = widgets.base_or_stop(config, device)
    card = widgets.memo("home-card", base.config.key, lambda: card_of(base, base_label(base.config)))
    overview(card, base.result["latency_ms"])

    st.subheader("Train a new base model")
    st.caption("It is kept in the run store and can then be picked in the sidebar on every page.")
    model_col, data_col, epochs_col, seed_col = st.columns(4)
    models = [name for name in list_models() if not name.startswith("torchvision:")]
    with model_col:
        model = widgets.kept(st.selectbox, "Model", models, key="train_model", default={})
    with data_col:
        dataset = widgets.kept(st.selectbox, "Data set", list_datasets(), key="dataset", default={})
    with epochs_col:
        epochs = widgets.kept(
            st.number_input, "Epochs", min_value=1, max_value=100, key="train_epochs", default={"value": 5}
        )
    with seed_col:
        seed = widgets.kept(
            st.number_input, "Seed", min_value=0, max_value=10_000, key="train_seed", default={"value": 0}
        )

    try:
        with st.spinner(f"Loading {dataset}..."):
            data = dataset_on(dataset, device)
        st.caption(
            f"{dataset}: {len(data.train):,} training, {len(data.val):,} validation and {len(data.test):,} test "
            f"images, {data.channels} x {data.image_size} x {data.image_size}, {data.num_classes} classes."
        )
        new_config = TrainConfig(model=model, dataset=dataset, epochs=int(epochs), seed=int(seed))
    except PlasticityError as exc:
        st.error(f"Data set {dataset} cannot be used here: {exc}")
        new_config = None

    train_job = st.session_state.get("train_job")
    running = train_job is not None and train_job.snapshot().running
    if st.button("Train", type="primary", disabled=new_config is None or running, key="train"):
        train_job = start_job(f"Training {base_label(new_config)}", train_work(new_config, widgets.run_store(), device))
        st.session_state["train_job"] = train_job

    def show_training(state: JobState | None) -> None:
        if state is None:
            return
        if state.running:
            st.progress(state.progress, text=f"{state.label}: {state.message or 'starting'}")
        elif not widgets.show_job_problem(state) and "base" in state.results:
            trained = state.results["base"]
            st.success(f"{state.label}: done, test accuracy {trained['acc']:.1%}. It is now the selected base model.")
            if st.session_state.get("selected_trained") != trained["key"]:
                st.session_state["selected_trained"] = st.session_state["next_base"] = trained["key"]
                st.rerun()

    widgets.follow(train_job, show_training)


if startup.library_loaded():
    whole_page()
else:
    first_screen()
