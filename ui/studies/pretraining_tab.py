"""The Pre-trained vs scratch tab: does starting from pre-trained weights make a network more prunable?
(Hubens et al.) Two bases learn the same target task, one from scratch, one from a source task's weights."""

import pandas as pd
import streamlit as st

from plasticity.errors import PlasticityError
from plasticity.jobs import JobState
from plasticity.runs import Base
from plasticity.store import RunStore
from plasticity.studies import IMAGENET, PretrainingStudy, Task
from ui import jobs, limits, widgets
from ui.charts import studies as charts
from ui.plain import plain
from ui.studies.common import ACCURACY_COLUMNS, TOLERANCE, known_classes


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


def pretraining_tab(base: Base, device: str) -> None:
    study = choose_study(base)
    if study is None:
        return
    store = widgets.run_store()
    missing, untrained = study.missing(store), study.missing_bases(store)
    if missing and untrained:
        st.caption(f"{untrained} of the study's bases are not in the run store yet: they are trained first.")
    title = f"Pre-trained vs scratch on {study.target}"
    job = jobs.study_job("pretraining_job", study, title, store, device, missing=missing)
    jobs.follow(job, lambda state: show_study(state, study, store))


def choose_study(base: Base) -> PretrainingStudy | None:
    """The study the settings describe, or None (with a message) when they describe none."""
    chosen = settings(base)
    explain(chosen)
    if not chosen["ratios"]:
        st.warning("Pick at least one ratio.")
        return None

    try:
        source = chosen["source"]
        return PretrainingStudy(
            chosen["model"],
            Task.parse(chosen["target"]),
            IMAGENET if source == IMAGENET else Task.parse(source),
            chosen["criterion"],
            chosen["ratios"],
            chosen["seeds"],
            epochs=chosen["epochs"],
            source_epochs=chosen["source_epochs"],
            finetune_epochs=chosen["finetune_epochs"],
        )
    except PlasticityError as exc:
        st.error(plain(exc))
        return None


def settings(base: Base) -> dict:
    """The study's settings, picked from tasks of the base's data set.

    Longer than a screen only by its eight widgets' arguments, one per line: split, it would read worse.
    """
    model, dataset = base.config.model, base.config.dataset
    tasks = task_choices(dataset, known_classes(base))
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
        criteria, why = widgets.usable_criteria(base)
        criterion = widgets.kept(
            st.selectbox,
            "Criterion",
            criteria,
            key="pretraining_criterion",
            default={"index": criteria.index("l1")},
            help=why,
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
            max_value=limits.epochs(30),
            key="target_epochs",
            default={"value": limits.epochs(5)},
        )
    with source_epochs_col:
        source_epochs = widgets.kept(
            st.number_input,
            "Epochs on the source",
            min_value=1,
            max_value=limits.epochs(30),
            key="source_epochs",
            default={"value": limits.epochs(5)},
        )
    with finetune_col:
        finetune_epochs = widgets.kept(
            st.number_input,
            "Fine-tuning epochs",
            min_value=1,
            max_value=limits.epochs(10),
            key="pretraining_finetune_epochs",
            default={"value": 2},
        )

    return {
        "model": model,
        "target": target_text,
        "source": source_text,
        "criterion": criterion,
        "ratios": ratios,
        "seeds": seeds,
        "epochs": int(epochs),
        "source_epochs": int(source_epochs),
        "finetune_epochs": int(finetune_epochs),
    }


def explain(chosen: dict) -> None:
    """What the two networks are, in the words of the settings."""
    model, target_text, source_text = chosen["model"], chosen["target"], chosen["source"]
    epochs, criterion = chosen["epochs"], chosen["criterion"]
    source_words = (
        "torchvision's ImageNet weights" if source_text == IMAGENET else f"the source task, {plain(source_text)}"
    )
    st.markdown(
        f"Two {model} networks learn the target task, **{plain(target_text)}**, for the same {epochs} "
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


def show_study(state: JobState | None, study: PretrainingStudy, store: RunStore) -> None:
    jobs.show_progress(state)
    table = study.table(store)
    jobs.show_failures(table)
    done = table[table["status"] == "done"]
    if not done.empty:
        summary = study.summarise(done.to_dict("records"))
        share = study.prunable_share(summary, TOLERANCE)
        summary = pd.DataFrame(summary)
        show_prunable_shares(summary, share)
        figure = widgets.memo("pretraining", table.to_json(), lambda: charts.pretraining_chart(summary))
        widgets.show_chart(figure, "pretrained-vs-scratch")
    else:
        st.info("No run of this study is done yet: press the button above to run it.")
    st.dataframe(table, key="pretraining_table", hide_index=True, column_config=ACCURACY_COLUMNS)
    st.download_button(
        "Download the table as CSV",
        table.to_csv(index=False),
        file_name=f"pretrained-vs-scratch-{study.target}.csv".replace(":", "-"),
        mime="text/csv",
        key="pretraining_csv",
        on_click="ignore",
    )


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
