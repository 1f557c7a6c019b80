"""The Class subset tab: how much further a network can be pruned when only a few classes matter
(Mittal et al.): every criterion pruned for the subset, and for every class, on one base."""

import pandas as pd
import streamlit as st

from plasticity.data import format_classes
from plasticity.errors import PlasticityError
from plasticity.jobs import JobState
from plasticity.runs import Base
from plasticity.store import RunStore
from plasticity.studies import ClassSubsetStudy, same_steps_epochs
from ui import jobs, limits, widgets
from ui.charts import studies as charts
from ui.plain import plain
from ui.studies.common import ACCURACY_COLUMNS, TOLERANCE, known_classes


def class_subset_tab(base: Base, device: str) -> None:
    st.markdown(
        "A network trained on every class is often used for only a few of them. Here it is pruned **for a "
        "subset**: the data criteria (apoz, mean-activation, taylor) look only at those classes' images, and "
        "fine-tuning and testing use only them. Solid lines are pruned for the subset, dashed lines the same "
        "criterion pruned for every class; each is tested on the classes it was pruned for, so compare each "
        "line with its own unpruned point at 0%."
    )
    study = choose_study(base)
    if study is None:
        return
    images = len(base.data.subset(study.classes).train)
    st.caption(
        f"Fine-tuning: {study.subset_finetune_epochs} epochs on the {images:,} training images of "
        f"{format_classes(study.classes)}, {study.finetune_epochs} on all {len(base.data.train):,}."
    )

    store = widgets.run_store()
    title = f"Pruning for {format_classes(study.classes)} and for all classes"
    job = jobs.study_job("subset_job", study, title, store, device)
    jobs.follow(job, lambda state: show_study(state, study, store))


def choose_study(base: Base) -> ClassSubsetStudy | None:
    """The study the settings describe, or None (with a message) when they describe none."""
    classes_known = known_classes(base)
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
        criteria = widgets.criteria_select(base, "subset_criteria", ["random", "apoz"])
    ratios_col, seeds_col, epochs_col, steps_col = st.columns([4, 1, 2, 3])  # four ratios whole at 1280 px
    with ratios_col:
        ratios = widgets.ratios_select("subset_ratios", [25, 50, 75, 90])
    with seeds_col:
        seeds = widgets.seeds_input("subset_seeds", 1)
    with epochs_col:
        epochs = widgets.kept(
            st.slider,
            "Fine-tuning epochs",
            min_value=1,
            max_value=limits.epochs(10),
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
        return None
    if len(classes) == len(classes_known):
        st.info("Every class is picked: leave some out to see what pruning for a subset gains.")
        return None
    if not criteria or not ratios:
        st.warning("Pick at least one criterion and one ratio.")
        return None
    subset = tuple(sorted(classes))
    try:
        subset_epochs = same_steps_epochs(base.data, subset, epochs) if same_steps else epochs
        study = ClassSubsetStudy(base.config, subset, criteria, ratios, seeds, epochs, subset_epochs)
        study.keys()  # a criterion the base cannot use fails here
    except PlasticityError as exc:
        st.error(plain(exc))
        return None
    return study


def show_study(state: JobState | None, study: ClassSubsetStudy, store: RunStore) -> None:
    jobs.show_progress(state)
    table = study.table(store)
    jobs.show_failures(table)
    if (table["status"] == "done").any():
        show_prunable_ratios(study.prunable_ratios(table, TOLERANCE))
        figure = widgets.memo(
            "class-subset", table.to_json(), lambda: charts.class_subset_chart(study.chart_summary(table))
        )
        widgets.show_chart(figure, "class-subset")
    else:
        st.info("No run of this comparison is done yet: press the button above to run them.")
    st.dataframe(table, key="subset_table", hide_index=True, column_config=ACCURACY_COLUMNS)
    st.download_button(
        "Download the table as CSV",
        table.to_csv(index=False),
        file_name=f"class-subset-{format_classes(study.classes)}.csv",
        mime="text/csv",
        key="subset_csv",
        on_click="ignore",
    )


def show_prunable_ratios(reach: pd.DataFrame) -> None:
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
