"""Random masks: draw N coarse random masks, score them on validation, retrain the best (and a median one)."""

import streamlit as st

from plasticity.errors import PlasticityError
from plasticity.jobs import JobState, runs_work
from plasticity.pruning.masks import MaskSearch, layer_images, list_granularities
from plasticity.runs import Base, MaskConfig
from plasticity.views import recovery_table
from ui import jobs, widgets
from ui.charts import masks as charts
from ui.charts.prune import recovery_chart
from ui.plain import plain

WHAT_GOES = {
    "feature-map": "Feature maps: whole filters go, and with them the next layer's inputs that read them, "
    "so the network can be made smaller for real.",
    "kernel": "Kernels: whole k x k kernels go, each a connection from one input channel to one output filter.",
    "intra-kernel": "Intra-kernel: the same strided pattern of positions goes from every kernel of a layer.",
}

SCORED = "validation accuracy with the mask applied, before any retraining"
RETRAINED = "test accuracy of the {name} mask after retraining with the mask held in place"

config, device = widgets.sidebar()
base = widgets.base_or_stop(config, device)


@st.cache_data(show_spinner="Drawing the mask...", max_entries=32)
def mask_pictures(_base: Base, base_key: str, granularity: str, ratio: float, seed: int, index: int) -> list[dict]:
    """Per conv layer: the kept/removed image of mask `index`, its kernel size and its sparsity."""
    mask = MaskSearch(_base.model, _base.data, granularity, ratio, seed=seed).draw(index)
    removed = mask.removed(_base.model)
    return [
        {
            "layer": layer,
            "image": image.tolist(),
            "kernel": tuple(_base.model.get_submodule(layer).weight.shape[2:]),
            "sparsity": removed[layer][0] / removed[layer][1],
        }
        for layer, image in layer_images(mask, _base.model).items()
    ]


st.title("Random masks: the best of N")
st.caption(
    "Coarse pruning after Anwar and Sung: draw N random masks that remove the same share of every conv layer, "
    f"score each on the {len(base.data.val)} validation images without retraining, keep the best and retrain "
    "it once; the test images judge the result. A median mask is retrained beside it for comparison."
)
granularity_col, ratio_col, n_col, epochs_col = st.columns([3, 3, 2, 2])
with granularity_col:
    granularities = list_granularities()
    granularity = widgets.kept(
        st.selectbox,
        "Granularity",
        granularities,
        key="granularity",
        default={"index": granularities.index("kernel")},
    )
with ratio_col:
    percent = widgets.kept(
        st.slider,
        "Share removed in every conv layer",
        min_value=0,
        max_value=95,
        step=5,
        format="%d%%",
        key="mask_ratio",
        default={"value": 60},
    )
with n_col:
    n_masks = widgets.kept(
        st.number_input, "Masks to try (N)", min_value=1, max_value=200, key="n_masks", default={"value": 50}
    )
with epochs_col:
    epochs = widgets.finetune_epochs_slider()

st.caption(WHAT_GOES.get(granularity, ""))
ratio = percent / 100
try:
    runs = {
        pick: MaskConfig(base.config, granularity, ratio, int(n_masks), 0, epochs, retrain=pick)
        for pick in ("best", "median")
    }
    mask_pictures(base, base.config.key, granularity, ratio, 0, 0)  # a ratio that empties a layer fails here
except PlasticityError as exc:
    st.error(plain(exc))
    st.stop()

store = widgets.run_store()
label = f"{int(n_masks)} {granularity} masks at {ratio:.0%}"
finished = {name: run.result for name, config in runs.items() if (run := store.done(config.key))}
# Scoring N masks and retraining two takes minutes: it starts on the button, never on a visit or a link.
job = jobs.run_and_stop(
    "masks_job",
    tuple(config.key for config in runs.values()),
    lambda: jobs.start(label, runs_work(runs, store, device, base)),
    label="Every run is done" if len(finished) == len(runs) else f"Score {int(n_masks)} masks and retrain two",
    run_key="run_masks",
    stop_key="stop_masks",
)


def show_results(state: JobState | None) -> None:
    results = {**(state.results if state else {}), **finished}
    jobs.show_progress(state)
    if not results and not jobs.running(job):
        st.info("Nothing has run with these settings yet: press the button above to score the masks.")
        return
    best, median = results.get("best"), results.get("median")
    scored = max((r for r in results.values()), key=lambda r: len(r["val_accs"]), default=None)
    val_accs = scored["val_accs"] if scored else []

    metrics = st.columns([1, 1, 1, 1, 1.2, 1.3])  # at 1280 px equal columns cut "Median, retrained"
    metrics[0].metric("Unpruned", f"{base.result['acc']:.1%}", help="test accuracy of the base")
    if best and best.get("acc_pruned") is not None:
        metrics[1].metric("Weights gone", f"{best['sparsity']:.1%}", help="share of all conv weights removed")
        metrics[2].metric(f"Best of {len(val_accs)}", f"{best['best_val_acc']:.1%}", help=SCORED)
        metrics[3].metric("Median mask", f"{best['median_val_acc']:.1%}", help=SCORED)
    else:
        metrics[1].metric("Masks scored", f"{len(val_accs)} of {int(n_masks)}")
    for column, name, result in ((metrics[4], "best", best), (metrics[5], "median", median)):
        final = result.get("acc_final") if result else None
        value = f"{final:.1%}" if final is not None else "..."
        column.metric(f"{name.capitalize()}, retrained", value, help=RETRAINED.format(name=name))
    if not val_accs:
        return

    marks = {}
    if best and best.get("acc_pruned") is not None:
        marks = {"best": best["best_val_acc"], "median": best["median_val_acc"], "worst": best["worst_val_acc"]}
    widgets.show_chart(
        charts.mask_accuracy_histogram(val_accs, marks, base.result.get("acc_val", base.result["acc"])), "mask-scores"
    )
    shown = {name: r for name, r in results.items() if r.get("acc_pruned") is not None}
    if "best" not in shown:
        return
    curve_col, image_col = st.columns([1, 1])
    with curve_col:
        widgets.show_chart(recovery_chart(recovery_table(shown), base.result["acc"], epochs), "mask-recovery")
        st.caption(
            f"MACs per image (conv and linear layers): {best['macs_base']:,} before pruning; "
            f"{best['macs_sparse']:,} for a sparse kernel that skips the removed weights; "
            f"{best['macs_dense']:,} on dense hardware"
            + (" (the removed filters are cut out for real)." if granularity == "feature-map" else ".")
        )
    with image_col:
        st.markdown(f"**The best mask (mask {best['best_index']} of {best['n_masks']})**: light = removed")
        draw = charts.kernel_pattern_image if granularity == "intra-kernel" else charts.mask_layer_image
        for picture in mask_pictures(base, base.config.key, granularity, ratio, 0, best["best_index"]):
            widgets.show_chart(
                draw(picture["layer"], picture["image"], picture["kernel"], picture["sparsity"]),
                f"mask-{picture['layer']}",
            )


jobs.follow(job, show_results)
