"""Class subsets and pre-training: how much further a network can be pruned when only a few classes matter
(Mittal et al.), and whether starting from pre-trained weights makes it more prunable (Hubens et al.)."""

from collections.abc import Callable

import streamlit as st

from plasticity.criteria import list_criteria
from plasticity.data import format_classes
from plasticity.errors import PlasticityError
from plasticity.jobs import Job, JobState, class_subset_work, pretraining_work, start_job
from plasticity.studies import IMAGENET, Task
from plasticity.study_views import (
    missing_bases,
    pretraining_plan,
    pretraining_summary,
    pretraining_table,
    prunable_ratio,
    same_steps_epochs,
    subset_configs,
    subset_summary,
    subset_table,
)
from ui import charts, widgets

TOLERANCE = 0.01  # accuracy a pruned model may lose and still count as "as good": one point
ACCURACY_COLUMNS = {
    "ratio": st.column_config.NumberColumn("filters pruned", format="percent"),
    "acc_base": st.column_config.NumberColumn("unpruned", format="percent"),
    "acc_pruned": st.column_config.NumberColumn("just pruned", format="percent"),
    "acc_final": st.column_config.NumberColumn("after fine-tuning", format="percent"),
    "epochs": st.column_config.NumberColumn("fine-tuning epochs"),
    "macs_pruned": st.column_config.NumberColumn("MACs", format="localized"),
    "params_pruned": st.column_config.NumberColumn("parameters", format="localized"),
    "params_removed": st.column_config.NumberColumn("parameters removed", format="percent"),
    "macs_removed": st.column_config.NumberColumn("MACs removed", format="percent"),
}

config, device = widgets.sidebar()
base = widgets.base_or_stop(config, device)
classes_known = list(base.config.classes or range(base.data.num_classes))


def current_job(name: str, wanted: tuple) -> Job | None:
    """This session's job `name`, if it was started for exactly these runs."""
    keys, job = st.session_state.get(name, ((), None))
    return job if keys == wanted else None


def run_and_stop(name: str, wanted: tuple, missing: int, job: Job | None, start: Callable[[], Job]) -> Job | None:
    """The "Run the N missing runs" and Stop buttons; a job started here is kept under `name`."""
    running = job is not None and job.snapshot().running
    run_col, stop_col, _ = st.columns([2, 1, 4])
    label = f"Run the {missing} missing run{'s' if missing != 1 else ''}" if missing else "Every run is done"
    if run_col.button(label, type="primary", disabled=running or missing == 0, key=f"{name}_run"):
        job = start()
        st.session_state[name] = (wanted, job)
    if stop_col.button("Stop", disabled=job is None or not job.snapshot().running, key=f"{name}_stop"):
        job.cancel()
    return job


def show_progress(state: JobState | None) -> None:
    if state is not None and state.running:
        st.progress(state.progress, text=f"{state.label}: {state.message or 'starting'}")
    widgets.show_job_problem(state)


def show_failures(table) -> None:
    for status in table.loc[table["status"].str.startswith("failed"), "status"].unique():
        st.warning(f"Some runs failed ({status.removeprefix('failed: ')}); running them again retries them.")


# --- Tab 1: class-specific pruning (paper 1) ------------------------------------------------------------


def class_subset_tab() -> None:
    st.markdown(
        "A network trained on every class is often used for only a few of them. Here it is pruned **for a "
        "subset**: the data criteria (apoz, mean-activation, taylor) look only at those classes' images, and "
        "fine-tuning and testing use only them. Solid lines are pruned for the subset, dashed lines the same "
        "criterion pruned for every class; each is tested on the classes it was pruned for, so compare each "
        "line with its own unpruned point at 0%."
    )
    classes_col, criteria_col = st.columns([3, 2])
    with classes_col:
        classes = widgets.kept(
            st.multiselect,
            "The classes that matter",
            classes_known,
            key="classes",
            default={"default": [c for c in (3, 5, 8) if c in classes_known] or classes_known[:3]},
        )
    with criteria_col:
        criteria = widgets.kept(
            st.multiselect, "Criteria", list_criteria(), key="subset_criteria", default={"default": ["random", "apoz"]}
        )
    ratios_col, seeds_col, epochs_col, steps_col = st.columns([3, 1, 2, 2])
    with ratios_col:
        ratios = widgets.ratios_select("subset_ratios", [25, 50, 75, 90])
    with seeds_col:
        seeds = widgets.seeds_input("subset_seeds", 1)
    with epochs_col:
        epochs = widgets.kept(
            st.slider,
            "Fine-tuning epochs",
            min_value=1,
            max_value=10,
            key="subset_finetune_epochs",
            default={"value": 2},
        )
    with steps_col:
        same_steps = widgets.kept(
            st.toggle,
            "Equal fine-tuning steps",
            key="same_steps",
            default={"value": True},
            help="An epoch on 3 of 10 classes is 3/10 of the images, so 3/10 of the optimiser steps. On: the "
            "subset is fine-tuned for proportionally more epochs, about the steps the whole set gets. Off: the "
            "same epochs, so fewer steps.",
        )

    if not classes:
        st.info("Pick the classes that matter (at least one) to prune the network for them.")
        return
    if len(classes) == len(classes_known):
        st.info("Every class is picked: leave some out to see what pruning for a subset gains.")
        return
    if not criteria or not ratios:
        st.warning("Pick at least one criterion and one ratio.")
        return
    subset = tuple(sorted(classes))
    try:
        subset_epochs = same_steps_epochs(base.data, subset, epochs) if same_steps else epochs
        configs = subset_configs(base.config, criteria, ratios, seeds, subset, epochs, subset_epochs)
    except PlasticityError as exc:
        st.error(str(exc))
        return
    st.caption(
        f"Fine-tuning: {subset_epochs} epochs on the {len(base.data.subset(subset).train):,} training images of "
        f"{format_classes(subset)}, {epochs} on all {len(base.data.train):,}."
    )

    store = widgets.run_store()
    wanted = tuple(c.key for c in configs)
    missing = sum(1 for c in configs if not ((run := store.get(c.key)) and run.status == "done"))

    def start() -> Job:
        work = class_subset_work(
            base.config,
            criteria,
            ratios,
            seeds,
            subset,
            store,
            device,
            finetune_epochs=epochs,
            subset_finetune_epochs=subset_epochs,
        )
        return start_job(f"Pruning for {format_classes(subset)} and for all classes", work)

    job = run_and_stop("subset_job", wanted, missing, current_job("subset_job", wanted), start)

    def show(state: JobState | None) -> None:
        show_progress(state)
        table = subset_table(configs, store)
        show_failures(table)
        if (table["status"] == "done").any():
            show_prunable_ratios(table)
            figure = widgets.memo(
                "class-subset", table.to_json(), lambda: charts.class_subset_chart(subset_summary(table))
            )
            widgets.show_chart(figure, "class-subset")
        else:
            st.info("No run of this comparison is done yet: press the button above to run them.")
        st.dataframe(table, key="subset_table", hide_index=True, column_config=ACCURACY_COLUMNS)
        st.download_button(
            "Download the table as CSV",
            table.to_csv(index=False),
            file_name=f"class-subset-{format_classes(subset)}.csv",
            mime="text/csv",
            key="subset_csv",
            on_click="ignore",
        )

    widgets.follow(job, show)


def show_prunable_ratios(table) -> None:
    reach = prunable_ratio(table, TOLERANCE)
    st.markdown(
        f"**The most filters pruned while the fine-tuned accuracy stays within {TOLERANCE * 100:g} point of "
        "the unpruned network on the same classes** (mean over seeds, among the ratios run):"
    )
    width = max(reach.groupby("pruned for", sort=False).size())
    for _, scope in reach.groupby("pruned for", sort=False):  # one row per scope, a metric per criterion
        for column, row in zip(st.columns(width), scope.to_dict("records")):
            column.metric(
                f"{row['criterion']}, for {row['pruned for']}",
                f"{row['ratio']:.0%}",
                help=f"unpruned accuracy on these classes: {row['acc_base']:.1%}",
            )


# --- Tab 2: pre-trained vs from scratch (paper 2) -------------------------------------------------------


def task_choices(dataset: str, known: list[int]) -> list[str]:
    """Offline tasks from the base's data set: its two halves, the even and the odd classes, every class."""
    half = len(known) // 2
    subsets = [known[:half], known[half:], known[0::2], known[1::2]]
    tasks = [str(Task(dataset, tuple(s))) for s in subsets if s] + [str(Task(dataset, tuple(known)))]
    return list(dict.fromkeys(tasks))


def describe_task(task: str) -> str:
    if task == IMAGENET:
        return "ImageNet (torchvision's weights)"
    dataset, _, classes = task.partition(":")
    return f"{dataset}, classes {classes}" if classes else f"{dataset}, every class"


def pretraining_tab() -> None:
    model, dataset = base.config.model, base.config.dataset
    tasks = task_choices(dataset, classes_known)
    sources = tasks + ([IMAGENET] if model.startswith("torchvision:") else [])
    target_col, source_col, criterion_col = st.columns([2, 2, 2])
    with target_col:
        target_text = widgets.kept(
            st.selectbox,
            "Target task (both learn it)",
            tasks,
            format_func=describe_task,
            key="target",
            default={"index": 1},
        )
    with source_col:
        source_text = widgets.kept(
            st.selectbox,
            "Source task (the pretrained one learns it first)",
            sources,
            format_func=describe_task,
            key="source",
            default={"index": 0},
        )
    with criterion_col:
        criteria = list_criteria()
        criterion = widgets.kept(
            st.selectbox, "Criterion", criteria, key="pretraining_criterion", default={"index": criteria.index("l1")}
        )
    ratios_col, seeds_col, epochs_col, source_epochs_col, finetune_col = st.columns([3, 1, 1, 1, 1])
    with ratios_col:
        ratios = widgets.ratios_select("pretraining_ratios", [25, 50, 75, 90])
    with seeds_col:
        seeds = widgets.seeds_input("pretraining_seeds", 2)
    with epochs_col:
        epochs = widgets.kept(
            st.number_input,
            "Epochs on the target",
            min_value=1,
            max_value=30,
            key="target_epochs",
            default={"value": 5},
        )
    with source_epochs_col:
        source_epochs = widgets.kept(
            st.number_input,
            "Epochs on the source",
            min_value=1,
            max_value=30,
            key="source_epochs",
            default={"value": 5},
        )
    with finetune_col:
        finetune_epochs = widgets.kept(
            st.number_input,
            "Fine-tuning epochs",
            min_value=1,
            max_value=10,
            key="pretraining_finetune_epochs",
            default={"value": 2},
        )

    source_words = "torchvision's ImageNet weights" if source_text == IMAGENET else f"the source task, {source_text}"
    st.markdown(
        f"Two {model} networks learn the target task, **{target_text}**, for the same {epochs} "
        f"epoch{'s' if epochs != 1 else ''}: one from a random start (**scratch**), one starting from the weights "
        f"of a {model} first trained on {source_words} (**pretrained**; only its classifier starts afresh). Both "
        f"are then pruned with {criterion} at each ratio and fine-tuned alike. Hubens et al. found pre-trained "
        "networks lose far less when pruned hard; with one half of the digits as the source and the other half as "
        "the target (the default), the pretrained filters have seen pen strokes, never the target digits."
    )
    if source_text == IMAGENET:
        st.info(
            "torchvision's ImageNet weights are downloaded once into torch's hub cache; without a network "
            "connection the run stops with a message. A source task of the same data set works offline."
        )
    elif not model.startswith("torchvision:"):
        st.caption(
            f"ImageNet as the source is offered for torchvision models only ({model} has no ImageNet weights): "
            "offline, the source is another task of the same data set."
        )
    if not ratios:
        st.warning("Pick at least one ratio.")
        return

    try:
        target = Task.parse(target_text)
        source = IMAGENET if source_text == IMAGENET else Task.parse(source_text)
        plan = pretraining_plan(
            model,
            target,
            source,
            criterion,
            ratios,
            seeds,
            epochs=int(epochs),
            source_epochs=int(source_epochs),
            finetune_epochs=int(finetune_epochs),
        )
    except PlasticityError as exc:
        st.error(str(exc))
        return

    store = widgets.run_store()
    wanted = tuple(config.key for _, config in plan)
    missing = sum(1 for _, c in plan if not ((run := store.get(c.key)) and run.status == "done"))
    untrained = missing_bases(plan, store)
    if missing and untrained:
        st.caption(f"{untrained} of the study's bases are not in the run store yet: they are trained first.")

    def start() -> Job:
        work = pretraining_work(
            model,
            target,
            source,
            criterion,
            ratios,
            seeds,
            store,
            device,
            epochs=int(epochs),
            source_epochs=int(source_epochs),
            finetune_epochs=int(finetune_epochs),
        )
        return start_job(f"Pre-trained vs scratch on {target}", work)

    job = run_and_stop("pretraining_job", wanted, missing, current_job("pretraining_job", wanted), start)

    def show(state: JobState | None) -> None:
        show_progress(state)
        table = pretraining_table(plan, store)
        show_failures(table)
        done = table[table["status"] == "done"]
        if not done.empty:
            summary, share = pretraining_summary(table, TOLERANCE)
            show_prunable_shares(summary, share)
            figure = widgets.memo("pretraining", table.to_json(), lambda: charts.pretraining_chart(summary))
            widgets.show_chart(figure, "pretrained-vs-scratch")
        else:
            st.info("No run of this study is done yet: press the button above to run it.")
        st.dataframe(table, key="pretraining_table", hide_index=True, column_config=ACCURACY_COLUMNS)
        st.download_button(
            "Download the table as CSV",
            table.to_csv(index=False),
            file_name=f"pretrained-vs-scratch-{target}.csv".replace(":", "-"),
            mime="text/csv",
            key="pretraining_csv",
            on_click="ignore",
        )

    widgets.follow(job, show)


def show_prunable_shares(summary, share: dict[str, float]) -> None:
    columns = st.columns(4)
    for i, modality in enumerate(("scratch", "pretrained")):
        rows = summary[summary["modality"] == modality] if not summary.empty else summary
        if rows.empty:
            continue
        columns[i].metric(
            f"{modality}: unpruned", f"{rows['acc_base_mean'].mean():.1%}", help="test accuracy on the target"
        )
        columns[2 + i].metric(
            f"{modality}: parameters removable",
            f"up to {share[modality]:.0%}",
            help=f"the most parameters removed with the fine-tuned accuracy (mean over seeds) within "
            f"{TOLERANCE * 100:g} point of this modality's unpruned accuracy, among the ratios run",
        )


st.title("Class subsets & pre-training")
subset_tab, pretrained_tab = st.tabs(["Class subset", "Pre-trained vs scratch"], key="study", bind="query-params")
if subset_tab.open:
    with subset_tab:
        class_subset_tab()
if pretrained_tab.open:
    with pretrained_tab:
        pretraining_tab()
