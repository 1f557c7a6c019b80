"""Detection & segmentation: prune a Faster R-CNN's backbone or a SegNet, see mAP or mean IoU right after
pruning and while fine-tuning, the frames per second before and after, and what each network sees."""

import json

import streamlit as st

from plasticity.errors import PlasticityError
from plasticity.export import TASK_FORMATS
from plasticity.jobs import JobState, start_job
from plasticity.tasks.runs import DEFAULTS, METRIC, ScenePruneConfig, SceneTrainConfig, get_scene_base, load_pruned
from plasticity.tasks.scenes import list_scene_datasets
from plasticity.tasks.views import pictures, recovery_table, scenes_work
from ui import jobs, widgets
from ui.charts import scenes as charts
from ui.export import download_buttons
from ui.plain import plain

SCORE_NAMES = {"map": "mAP", "miou": "mean IoU"}
PAGE_DATASET = "digits-canvas"  # the fast set: exact boxes and masks, big enough to tell methods apart

_, device = widgets.sidebar()
st.title("Detection & segmentation")
st.caption(
    "Prune the filters of a Faster R-CNN's backbone (its heads keep their inputs) or of a SegNet, then "
    "fine-tune: the score right after pruning and after each epoch, random beside the chosen criterion, "
    "with the frames per second of the base and of the pruned network."
)
task_col, data_col, folder_col, base_col = st.columns([2, 2, 3, 2])
with task_col:
    task = widgets.kept(st.selectbox, "Task", list(DEFAULTS), key="task", default={})
with data_col:
    shipped = [name for name in list_scene_datasets(task) if not name.endswith("<path>")]
    dataset = widgets.kept(
        st.selectbox, "Data set", shipped, key="scene_data", default={"index": shipped.index(PAGE_DATASET)}
    )
with folder_col:
    folder = widgets.kept(
        st.text_input,
        "Or your own, as voc:PATH, coco:PATH or masks:PATH",
        key="scene_folder",
        default={"value": ""},
        help=", ".join(name for name in list_scene_datasets(task) if name.endswith("<path>")),
    )
with base_col:
    base_epochs = widgets.kept(
        st.number_input, "Base training epochs", min_value=1, max_value=50, key="scene_epochs", default={"value": 3}
    )
ratio_col, criterion_col, epochs_col = st.columns([3, 2, 2])
with ratio_col:
    ratio = widgets.ratio_slider()
with criterion_col:
    criterion = widgets.kept(
        st.selectbox, "Criterion", ["l1", "l2", "bn-scale"], key="scene_criterion", default={"index": 0}
    )
with epochs_col:
    epochs = widgets.finetune_epochs_slider()

try:
    base_config = SceneTrainConfig(task, DEFAULTS[task][0], folder.strip() or dataset, int(base_epochs))
    runs = {name: ScenePruneConfig(base_config, name, ratio, 0, epochs) for name in (criterion, "random")}
except PlasticityError as exc:
    st.error(plain(exc))  # it may quote the folder the user typed
    st.stop()
metric = METRIC[task]
score_name = SCORE_NAMES[metric]
store = widgets.run_store()
wanted = tuple(config.key for config in runs.values())
finished = {name: run.result for name, config in runs.items() if (run := store.done(config.key))}
base_stored = store.done(base_config.key) is not None
if base_stored:  # the base is there: the runs of the slider's position start at once, as on Prune & recover
    job = jobs.replace(
        "scenes_job",
        wanted,
        lambda: None if len(finished) == len(runs) else start_job("Pruning", scenes_work(runs, store, device)),
    )
else:
    st.info(f"No base {base_config.network} trained on {base_config.dataset} for {base_epochs} epochs yet.")
    job = jobs.run_and_stop(
        "scenes_job",
        wanted,
        lambda: start_job("Training the base, then pruning", scenes_work(runs, store, device)),
        label=f"Train the base ({base_epochs} epochs), then prune",
    )


@st.cache_resource(max_entries=4, show_spinner="Loading the base...")
def _base(config_json: str, device: str):
    return get_scene_base(SceneTrainConfig.from_dict(json.loads(config_json)), widgets.run_store(), device)


def show_pictures(results: dict[str, dict]) -> None:
    """The first test tiles as the base and each fine-tuned network see them."""
    base = _base(json.dumps(base_config.to_dict()), device)
    rows = {"base": base.model}
    rows.update({name: load_pruned(runs[name], store, base) for name in runs if name in results})
    st.subheader("What each network finds on the first test tiles")
    st.caption(
        "Predicted boxes scoring at least 0.5 in their class's colour, the true boxes in white"
        if task == "detection"
        else "The predicted mask over each tile, a colour per class"
    )
    for name, model in rows.items():
        drawn = pictures(model, task, base.scenes)
        st.image(drawn, caption=[f"{name}, tile {k + 1}" for k in range(len(drawn))], width=160)


def show_results(state: JobState | None) -> None:
    results = {**(state.results if state else {}), **finished}
    results = {name: results[name] for name in runs if name in results}
    jobs.show_progress(state, "starting")
    if jobs.show_problem(state):
        jobs.retry_button("scenes_job")
    if not results:
        return
    base_score = next(iter(results.values()))[f"{metric}_base"]
    shown = st.columns(1 + 2 * len(runs))
    shown[0].metric(f"{score_name} before pruning", f"{base_score:.3f}")
    for i, name in enumerate(runs):
        result = results.get(name)
        pruned = f"{result[metric + '_pruned']:.3f}" if result else "..."
        final = f"{result[metric + '_final']:.3f}" if result and result[metric + "_final"] is not None else "..."
        shown[1 + 2 * i].metric(f"{name}: just pruned", pruned)
        shown[2 + 2 * i].metric(f"{name}: after {epochs} epochs", final)
    points = tuple((name, r["key"], len(r["curve"])) for name, r in results.items())
    chart = widgets.memo(
        "scene-recovery",
        (points, epochs),
        lambda: charts.recovery_chart(recovery_table(results, metric), base_score, score_name, epochs),
    )
    widgets.show_chart(chart, "scene-recovery")
    done = [name for name, result in results.items() if result["fps_pruned"] is not None]
    speed = st.columns(max(1, len(done)))
    for column, name in zip(speed, done):
        fps, fps_base = results[name]["fps_pruned"], results[name]["fps_base"]
        column.metric(
            f"{name}: images per second", f"{fps:.0f}", f"{fps / fps_base - 1:+.0%} on the base's {fps_base:.0f}"
        )
    if done:
        about = (
            " Only the detector's backbone is pruned: its region proposals, box heads and post-processing keep "
            "their size, and on small images, such as the 64-pixel canvases, they take most of the time, so "
            "the gain there is small."
            if task == "detection"
            else ""
        )
        st.caption(
            "Inference on one batch of 16 test tiles, the median of 5 passes, the base's measured right before "
            "the pruned network's (a detector's includes its box post-processing)." + about
        )
    if done and (state is None or state.done):
        download_buttons({name: config.key for name, config in runs.items()}, store, TASK_FORMATS[task])
        show_pictures({name: results[name] for name in done})


jobs.follow(job, show_results)
