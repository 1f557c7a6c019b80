"""The lesson page through Streamlit's AppTest, on the shipped default: every step's numbers come from
real runs (random and l1 at 50% and 90%), none is written in advance."""

import re

from test_app import charts, open_page, run_until_done, stop_jobs  # noqa: F401 (a fixture)

from plasticity.runs import PruneConfig, TrainConfig
from plasticity.store import RunStore, plasticity_home


def story(at) -> str:
    return " ".join(block.value for block in at.markdown)


def test_the_lesson_steps_through_the_story_with_live_numbers():
    at = open_page("pages/lesson.py")
    assert not at.exception and not at.error
    assert "What to notice" in at.info[0].value
    assert "l1-norm of every filter while the base trained" in charts(at)

    at.button(key="next").click().run()  # 2: prune half at random, the filters it removes coloured
    assert at.query_params["lesson_step"] == "2"
    assert "in `conv1` 10 of 20, coloured here" in story(at)

    at.button(key="next").click().run()  # 3: the drop, computed by this step's job
    run_until_done(at, "lesson_job")
    dropped = re.search(r"gets (\d+\.\d)% of the test images right, against (\d+\.\d)%", story(at))
    assert dropped and float(dropped[1]) < float(dropped[2])
    store = RunStore(plasticity_home())
    random_half = store.done(PruneConfig(TrainConfig(), "random", 0.5, 0, 3).key).result
    assert f"{random_half['acc_pruned']:.1%}" in story(at)  # the run's own number

    at.segmented_control(key="lesson_step").set_value(8).run()  # the last step starts what is missing
    assert not at.exception and "Mittal et al." in story(at) and at.button(key="next").disabled
    assert at.query_params["lesson_step"] == "8"
