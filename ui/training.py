"""Training a new base model from the dashboard: the form, the worker job and its progress."""

import hashlib
from pathlib import Path

import streamlit as st

from plasticity.data import FOLDER_PREFIX, list_datasets
from plasticity.errors import PlasticityError
from plasticity.jobs import JobState, train_work
from plasticity.models import list_models, read_weights
from plasticity.runs import TrainConfig, dataset_on
from plasticity.store import plasticity_home
from plasticity.views import base_label
from ui import jobs, limits, widgets
from ui.plain import plain

OWN_MODEL = "your own network..."
OWN_FOLDER = "a folder of images..."


def new_base_form(device: str) -> None:
    """Model, data set, epochs and seed; Train runs in the background, and the trained base becomes the
    sidebar's selection on every page."""
    st.subheader("Train a new base model")
    if not limits.current().allow_training:
        st.info("Training new base models is turned off on this server; any stored base can be picked in the sidebar.")
        return
    st.caption("It is kept in the run store and can then be picked in the sidebar on every page.")
    model_col, data_col, epochs_col, seed_col = st.columns(4)
    models = [name for name in list_models() if not name.startswith("torchvision:")] + [OWN_MODEL]
    with model_col:
        model = widgets.kept(st.selectbox, "Model", models, key="train_model", default={})
        if model == OWN_MODEL:
            model = widgets.kept(
                st.text_input,
                "Factory",
                key="train_factory",
                default={"value": ""},
                placeholder="path/to/net.py:factory",
                help="path/to/file.py:factory or module.path:factory: a function that takes the number of "
                "classes and returns a torch.nn.Module",
            ).strip()
    with data_col:
        dataset = widgets.kept(st.selectbox, "Data set", [*list_datasets(), OWN_FOLDER], key="dataset", default={})
        if dataset == OWN_FOLDER:
            folder = widgets.kept(
                st.text_input,
                "Folder",
                key="train_folder",
                default={"value": ""},
                placeholder="~/photos",
                help="One sub-folder of images per class; options after ?, like ~/photos?size=64,channels=3",
            ).strip()
            dataset = FOLDER_PREFIX + folder
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

    uploaded = st.file_uploader(
        "Start from these weights (optional)",
        type=["pt", "pth"],
        key="train_weights",
        help="A state_dict, or a checkpoint holding one under 'model' (torchvision's format); "
        "read with torch.load(weights_only=True), so a file that names code is refused.",
    )
    new_config = _config(model, dataset, int(epochs), int(seed), uploaded, device)

    train_job = st.session_state.get("train_job")
    running = jobs.running(train_job)
    if st.button("Train", type="primary", disabled=new_config is None or running, key="train"):
        work = train_work(new_config, widgets.run_store(), device)
        train_job = jobs.start(f"Training {base_label(new_config)}", work)
        st.session_state["train_job"] = train_job

    jobs.follow(train_job, show_training)


def _config(model: str, dataset: str, epochs: int, seed: int, uploaded, device: str) -> TrainConfig | None:
    """The new base's config, its data set loaded and described; None, with the error shown, when a
    choice cannot be used (the errors the command line gives, as plain text)."""
    if not model or dataset == FOLDER_PREFIX:
        st.caption("Name your network's factory and your folder of images to train on them.")
        return None
    try:
        with st.spinner("Loading the data set..."):
            data = dataset_on(TrainConfig(dataset=dataset).dataset, device)
        st.text(
            f"{dataset}: {len(data.train):,} training, {len(data.val):,} validation and {len(data.test):,} test "
            f"images, {data.channels} x {data.image_size} x {data.image_size}, {data.num_classes} classes."
        )
        weights = ""
        if uploaded is not None:
            weights = str(_saved_upload(uploaded))
            read_weights(weights)  # a file that is no state_dict is refused now, not after the training starts
        return TrainConfig(model=model, dataset=dataset, epochs=epochs, seed=seed, weights=weights)
    except PlasticityError as exc:
        st.error("These choices cannot be used:")
        st.code(str(exc), language=None, wrap_lines=True)  # plain text: paths and names are the user's
        return None


def _saved_upload(uploaded) -> Path:
    """An uploaded weights file, kept in the run store by its content (the same file is stored once)."""
    content = uploaded.getvalue()
    path = plasticity_home() / "uploads" / f"{hashlib.sha1(content).hexdigest()[:12]}-{Path(uploaded.name).name}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return path


def show_training(state: JobState | None) -> None:
    """The training job's progress, then its result; the trained base becomes the selection."""
    if state is None:
        return
    if state.running:
        st.progress(state.progress, text=plain(f"{state.label}: {state.message or 'starting'}"))
    elif not jobs.show_problem(state) and "base" in state.results:
        trained = state.results["base"]
        st.success(
            f"{plain(state.label)}: done, test accuracy {trained['acc']:.1%}. It is now the selected base model."
        )
        if st.session_state.get("selected_trained") != trained["key"]:
            st.session_state["selected_trained"] = st.session_state["next_base"] = trained["key"]
            st.rerun()
