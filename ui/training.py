"""Training a new base model from the dashboard: the form, the worker job and its progress."""

import streamlit as st

from plasticity.data import list_datasets
from plasticity.errors import PlasticityError
from plasticity.jobs import JobState, train_work
from plasticity.models import list_models
from plasticity.runs import TrainConfig, dataset_on
from plasticity.views import base_label
from ui import jobs, limits, widgets


def new_base_form(device: str) -> None:
    """Model, data set, epochs and seed; Train runs in the background, and the trained base becomes the
    sidebar's selection on every page."""
    st.subheader("Train a new base model")
    if not limits.current().allow_training:
        st.info("Training new base models is turned off on this server; any stored base can be picked in the sidebar.")
        return
    st.caption("It is kept in the run store and can then be picked in the sidebar on every page.")
    model_col, data_col, epochs_col, seed_col = st.columns(4)
    models = [name for name in list_models() if not name.startswith("torchvision:")]
    with model_col:
        model = widgets.kept(st.selectbox, "Model", models, key="train_model", default={})
    with data_col:
        dataset = widgets.kept(st.selectbox, "Data set", list_datasets(), key="dataset", default={})
    with epochs_col:
        epochs = widgets.kept(
            st.number_input,
            "Epochs",
            min_value=1,
            max_value=limits.epochs(100),
            key="train_epochs",
            default={"value": limits.epochs(5)},
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
    running = jobs.running(train_job)
    if st.button("Train", type="primary", disabled=new_config is None or running, key="train"):
        work = train_work(new_config, widgets.run_store(), device)
        train_job = jobs.start(f"Training {base_label(new_config)}", work)
        st.session_state["train_job"] = train_job

    jobs.follow(train_job, show_training)


def show_training(state: JobState | None) -> None:
    """The training job's progress, then its result; the trained base becomes the selection."""
    if state is None:
        return
    if state.running:
        st.progress(state.progress, text=f"{state.label}: {state.message or 'starting'}")
    elif not jobs.show_problem(state) and "base" in state.results:
        trained = state.results["base"]
        st.success(f"{state.label}: done, test accuracy {trained['acc']:.1%}. It is now the selected base model.")
        if st.session_state.get("selected_trained") != trained["key"]:
            st.session_state["selected_trained"] = st.session_state["next_base"] = trained["key"]
            st.rerun()
