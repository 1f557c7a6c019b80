"""What filters look at: for one test image, every filter's activation and attribution in a layer, the
filters a criterion prunes greyed out; and where the base, pruned and fine-tuned networks look."""

import numpy as np
import streamlit as st

from plasticity.attribution import LAYER_METHODS, list_input_methods, list_layer_methods
from plasticity.errors import PlasticityError
from plasticity.inspection import FilterRanking, Looking, finetuned_model, gallery, layer_maps, rank_filters
from plasticity.inspection import where_they_look as looking_at
from plasticity.jobs import JobState
from plasticity.runs import Base, PruneConfig
from ui import jobs, widgets
from ui.charts import attribution as charts
from ui.plain import plain

INPUT_LABELS = {"integrated-gradients": "integrated gradients", "saliency": "saliency (|gradient|)"}
THUMBNAILS_PER_ROW = 10

config, device = widgets.sidebar()
base = widgets.base_or_stop(config, device)


@st.cache_resource(show_spinner="Scoring every filter with the criterion...", max_entries=16)
def ranking(_base: Base, base_key: str, device: str, criterion: str, ratio: float) -> FilterRanking:
    # Shared by every session, like the base: its pruned model is only read (the library hooks copies).
    return rank_filters(_base, criterion, ratio)


@st.cache_data(show_spinner="Attributing the class to every filter...", max_entries=64)
def maps(_base: Base, base_key: str, device: str, layer: str, index: int, method: str) -> tuple:
    found = layer_maps(_base.model, _base.data, index, layer, method)
    return found.activation.numpy(), found.attribution.numpy()


@st.cache_resource(show_spinner="Loading the fine-tuned network...", max_entries=8)
def finetuned(_config: PruneConfig, key: str, device: str):
    return finetuned_model(_config, widgets.run_store(), device)


@st.cache_data(show_spinner="Attributing the class to the pixels...", max_entries=64)
def looks(_models: dict, _base: Base, models_key: tuple, index: int, method: str) -> list[Looking]:
    return looking_at(_models, _base.data, index, method)


def pick(index: int) -> None:
    st.session_state["image"] = index
    st.session_state[widgets.KEPT]["image"] = index  # kept() restores this value on every page


st.title("What filters look at")
st.caption(
    "Pick a test image and a layer: each filter's activation (what it responds to) beside its attribution "
    "(how much each position of it pushes the score of the image's own class), sorted by the criterion's "
    "importance, with the filters it prunes greyed out. Below, where the whole network looks in the image "
    "before pruning, right after, and after fine-tuning."
)
test = base.data.test
picks = gallery(base.data, per_class=2)
image_col, layer_col, criterion_col, ratio_col, epochs_col = st.columns([2, 2, 2, 3, 2])
with image_col:
    index = int(
        widgets.kept(
            st.number_input,
            f"Test image (0-{len(test) - 1})",
            min_value=0,
            max_value=len(test) - 1,
            key="image",
            default={"value": picks[0]},
            help="Or click one of the thumbnails below",
        )
    )
    label = int(test.labels[index])
with layer_col:
    layer = widgets.kept(st.selectbox, "Layer", list(base.history.width), key="layer", default={})
with criterion_col:
    criterion = widgets.criterion_select(base)
with ratio_col:
    ratio = widgets.ratio_slider()
with epochs_col:
    epochs = widgets.finetune_epochs_slider()

for start in range(0, len(picks), THUMBNAILS_PER_ROW):
    for column, shown in zip(st.columns(THUMBNAILS_PER_ROW), picks[start : start + THUMBNAILS_PER_ROW]):
        with column:
            st.image(test.images[shown, 0].cpu().numpy(), width=56)
            st.button(
                str(shown),
                key=f"pick_{shown}",
                on_click=pick,
                args=(shown,),
                type="primary" if shown == index else "secondary",
                help=f"test image {shown}, a {int(test.labels[shown])}",
                width="stretch",
            )

try:
    ranked = ranking(base, base.config.key, device, criterion, ratio)
except PlasticityError as exc:
    st.error(f"{criterion} cannot rank the filters of this model: {plain(exc)}")
    st.stop()

st.subheader(f"Every filter of {layer}")
method = widgets.kept(
    st.radio,
    "Attribution map",
    list_layer_methods(spatial_only=True),
    format_func=lambda name: LAYER_METHODS.get(name).label,
    horizontal=True,
    key="filter_attribution",
    default={},
)
activation, attribution = maps(base, base.config.key, device, layer, index, method)
pruned = set(ranked.pruned[layer])
order = ranked.order(layer)
st.markdown(
    f"Sorted by **{criterion}** importance, most important first; at {ratio:.0%} it prunes "
    f"**{len(pruned)} of {len(order)}** filters (greyed out). Left of each pair: the activation; right: the "
    f"{LAYER_METHODS.get(method).label} for the class {label} (red for it, blue against). Where max-pooling "
    "follows, only the positions that win their window pass anything on: the attribution is sparser."
)
widgets.show_chart(
    charts.filter_grid(
        activation,
        attribution,
        order,
        pruned,
        ranked.scores[layer].numpy(),
        f"{layer}: activation | attribution, per filter, for test image {index}",
    ),
    "filter-maps",
)

st.subheader("Where the network looks")
input_method = widgets.kept(
    st.radio,
    "Input attribution",
    list_input_methods(),
    format_func=lambda name: INPUT_LABELS.get(name, name),
    horizontal=True,
    key="input_attribution",
    default={},
)
run = PruneConfig(base.config, criterion, ratio, 0, epochs)  # the run the Prune & recover page makes
store = widgets.run_store()
job_label = f"Fine-tuning after {criterion} at {ratio:.0%}"
_, job, _ = jobs.follow_runs("attribution_job", {criterion: run}, store, device, base, job_label)


def show_looks(state: JobState | None) -> None:
    status = st.empty()  # one slot, whatever it holds, so the chart below never changes place between reruns
    models = {"base": base.model, f"pruned by {criterion}": ranked.model}
    if store.done(run.key):
        models[f"fine-tuned {epochs} epoch{'s' if epochs > 1 else ''}"] = finetuned(run, run.key, device)
    elif state is not None and state.running:
        status.progress(state.progress, text=plain(f"{state.label}: {state.message or 'starting'}"))
    else:
        with status.container():
            jobs.show_problem(state)
    found = looks(models, base, (base.config.key, device, *models, run.key), index, input_method)
    image = test.images[index, 0].cpu().numpy().astype(np.float32)
    widgets.show_chart(charts.where_they_look_chart(image, found, input_method, label), "where-they-look")
    if len(found) == 3:
        st.caption(
            f"Similarity is the cosine of two attribution maps: 1 when two networks weigh the same pixels alike. "
            f"After fine-tuning: {found[2].similarity:.2f}; right after pruning: {found[1].similarity:.2f}."
        )


jobs.follow(job, show_looks)
