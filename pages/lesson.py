"""A lesson: the story of pruning and plasticity told on the selected base, in steps a teacher clicks through.

Every number in the text comes from the library while the class watches (the base's card, the filters a
criterion picks, the runs of Prune & recover); nothing is written in advance.
"""

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from plasticity.jobs import JobState
from plasticity.runs import Base, PruneConfig
from plasticity.views import base_label, filters_pruned_by, norm_table, recovery_table
from ui import jobs, widgets
from ui.charts import lesson as lesson_charts
from ui.charts import norms as norm_charts
from ui.charts import prune as prune_charts

EPOCHS = 3  # the fine-tuning of every run of the lesson: the Prune & recover page's default
HALF, MOST = 0.5, 0.9


@dataclass(frozen=True)
class Step:
    title: str
    runs: tuple[tuple[str, float], ...]  # (criterion, ratio) of the runs the step shows
    tell: Callable[[Base, dict[str, dict]], tuple[str, str]]  # (a few sentences, what to notice)
    draw: Callable[[Base, dict[str, dict]], object]  # the chart beside them


config, device = widgets.sidebar()
base = widgets.base_or_stop(config, device)
store = widgets.run_store()
first_layer = next(iter(base.history.width))


@st.cache_data(show_spinner="Finding the filters random pruning removes...", max_entries=16)
def randomly_pruned(_base: Base, base_key: str) -> set[int]:
    return set(filters_pruned_by(_base, "random", HALF)[first_layer])


def name(criterion: str, ratio: float) -> str:
    return f"{criterion} at {ratio:.0%}"


def pct(value: float | None) -> str:
    return "..." if value is None else f"{value:.1%}"


def points(a: float | None, b: float | None) -> str:
    return "..." if a is None or b is None else f"{abs(a - b) * 100:.1f} points"


def best_of(*accuracies: float | None) -> float | None:
    known = [acc for acc in accuracies if acc is not None]
    return max(known) if len(known) == len(accuracies) else None


def result(results: dict[str, dict], criterion: str, ratio: float, field: str) -> float | None:
    run = results.get(name(criterion, ratio))
    return None if run is None else run.get(field)


def tell_trained(base: Base, results: dict) -> tuple[str, str]:
    width = base.history.width[first_layer]
    return (
        f"This is {base_label(base.config)}. It gets {pct(base.result['acc'])} of the test images right. "
        f"Its first conv layer, `{first_layer}`, has {width} filters: small pattern detectors. Each line is "
        f"one filter's l1-norm (the summed size of its weights) at the end of every training epoch.",
        "The filters did not grow alike: some end large, some stay small. A norm criterion bets that the small "
        "ones matter least.",
    )


def tell_random(base: Base, results: dict) -> tuple[str, str]:
    width = base.history.width[first_layer]
    gone = len(randomly_pruned(base, base.config.key))
    return (
        f"Random pruning removes half the filters of every conv layer, whatever their norms: in `{first_layer}` "
        f"{gone} of {width}, coloured here. The network keeps its shape; it just has fewer filters to work with.",
        "Large and small filters go alike: random pruning knows nothing about the network.",
    )


def tell_drop(base: Base, results: dict) -> tuple[str, str]:
    pruned = result(results, "random", HALF, "acc_pruned")
    return (
        f"Right after pruning, before any training, the network gets {pct(pruned)} of the test images right, "
        f"against {pct(base.result['acc'])} before: {points(base.result['acc'], pruned)} lost at once.",
        "The removed filters' work is simply missing: the layers after them read half of what they expect.",
    )


def tell_finetune(base: Base, results: dict) -> tuple[str, str]:
    curve = (results.get(name("random", HALF)) or {}).get("curve", [])
    return (
        f"Now the pruned network trains a little more on the same images: {EPOCHS} epochs of fine-tuning. "
        f"Each point is the test accuracy after one epoch ({len(curve)} of {EPOCHS} so far).",
        "The accuracy climbs back within the first epoch.",
    )


def tell_recovery(base: Base, results: dict) -> tuple[str, str]:
    final = result(results, "random", HALF, "acc_final")
    return (
        f"After {EPOCHS} epochs the randomly pruned network gets {pct(final)} right: "
        f"{points(base.result['acc'], final)} from the unpruned network, with half its filters.",
        "The remaining filters took over the work of the removed ones: this is the network's plasticity.",
    )


def tell_l1(base: Base, results: dict) -> tuple[str, str]:
    r_pruned, l_pruned = result(results, "random", HALF, "acc_pruned"), result(results, "l1", HALF, "acc_pruned")
    r_final, l_final = result(results, "random", HALF, "acc_final"), result(results, "l1", HALF, "acc_final")
    return (
        f"Now the same half is chosen by l1: the filters with the smallest norms go. Just pruned, l1 keeps "
        f"{pct(l_pruned)} against random's {pct(r_pruned)}. After {EPOCHS} epochs: l1 {pct(l_final)}, "
        f"random {pct(r_final)}.",
        f"The criterion matters right after pruning ({points(l_pruned, r_pruned)} apart); after fine-tuning "
        f"the gap is {points(l_final, r_final)}.",
    )


def tell_most(base: Base, results: dict) -> tuple[str, str]:
    r_pruned, l_pruned = result(results, "random", MOST, "acc_pruned"), result(results, "l1", MOST, "acc_pruned")
    r_final, l_final = result(results, "random", MOST, "acc_final"), result(results, "l1", MOST, "acc_final")
    return (
        f"Now 90% of the filters go, a tenth is left. Just pruned: l1 {pct(l_pruned)}, random {pct(r_pruned)}. "
        f"After {EPOCHS} epochs: l1 {pct(l_final)}, random {pct(r_final)}, against {pct(base.result['acc'])} "
        "unpruned.",
        f"With so little left, the recovery has limits: {points(base.result['acc'], best_of(r_final, l_final))} "
        "below the unpruned network for the better of the two.",
    )


def tell_papers(base: Base, results: dict) -> tuple[str, str]:
    gap_half = points(result(results, "l1", HALF, "acc_final"), result(results, "random", HALF, "acc_final"))
    return (
        "Mittal et al. pruned large image networks (VGG-16, ResNet-50) at random and found that, after "
        "fine-tuning, they matched networks pruned by the usual criteria: the recovery comes from the network's "
        "plasticity, not from a clever choice of filters. Hubens et al. found that a network pre-trained on a "
        "large data set can lose even more of its weights before its accuracy suffers. The chart gathers this "
        "lesson's four runs.",
        f"Here too: at 50% random ends {gap_half} from l1 after fine-tuning; the criterion counts most right "
        "after pruning and at high ratios.",
    )


def draw_norms(base: Base, results: dict, marked: bool = False):
    marks = {"random": randomly_pruned(base, base.config.key)} if marked else {}
    return norm_charts.norm_lines(norm_table(base.history, first_layer), marks)


def draw_recovery(base: Base, results: dict, just_pruned: bool = False):
    table = recovery_table(results)
    if just_pruned:
        table = table[table["epoch"] == 0]
    return prune_charts.recovery_chart(table, base.result["acc"], EPOCHS, y_range=(0, 100.5))


STEPS = [
    Step("A trained network", (), tell_trained, draw_norms),
    Step("Prune half at random", (), tell_random, lambda b, r: draw_norms(b, r, marked=True)),
    Step("The drop", (("random", HALF),), tell_drop, lambda b, r: draw_recovery(b, r, just_pruned=True)),
    Step("Fine-tune", (("random", HALF),), tell_finetune, draw_recovery),
    Step("The recovery", (("random", HALF),), tell_recovery, draw_recovery),
    Step("The same with l1", (("random", HALF), ("l1", HALF)), tell_l1, draw_recovery),
    Step("At 90%", (("random", MOST), ("l1", MOST)), tell_most, draw_recovery),
    Step(
        "What the papers concluded",
        (("random", HALF), ("l1", HALF), ("random", MOST), ("l1", MOST)),
        tell_papers,
        lambda b, r: lesson_charts.summary_chart(r, b.result["acc"]),
    ),
]


def go_to(number: int) -> None:
    st.session_state["lesson_step"] = number
    st.session_state[widgets.KEPT]["lesson_step"] = number


st.title("Lesson: how a pruned network recovers")
numbers = list(range(1, len(STEPS) + 1))
number = widgets.kept(
    st.segmented_control,
    "Step",
    numbers,
    format_func=lambda n: f"{n}. {STEPS[n - 1].title}",
    key="lesson_step",
    default={"default": 1},
    required=True,
)
step = STEPS[number - 1]
back_col, next_col, _ = st.columns([1, 1, 6])
back_col.button("Back", key="back", on_click=go_to, args=(number - 1,), disabled=number == 1, width="stretch")
next_col.button(
    "Next",
    key="next",
    type="primary",
    on_click=go_to,
    args=(number + 1,),
    disabled=number == len(STEPS),
    width="stretch",
)

configs = {name(c, r): PruneConfig(base.config, c, r, 0, EPOCHS) for c, r in step.runs}
finished, job, _ = jobs.follow_runs(
    "lesson_job", configs, store, device, base, f"Lesson step {number}: {', '.join(configs) or 'nothing to run'}"
)


def show_step(state: JobState | None) -> None:
    results = {**(state.results if state else {}), **finished}
    text_col, chart_col = st.columns([2, 3])
    with text_col:
        st.subheader(f"{number}. {step.title}")
        story, notice = step.tell(base, results)
        st.markdown(story)
        st.info(f"**What to notice:** {notice}")
        jobs.show_progress(state, default="pruning")
    with chart_col:
        if step.runs and not results:
            st.caption("Pruning...")
            return
        widgets.show_chart(step.draw(base, results), f"lesson-step-{number}")


jobs.follow(job, show_step)
