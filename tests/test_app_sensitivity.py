"""The Layer sensitivity page (its MACs budget too) and the schedule on Prune & recover and Random vs criterion,
through Streamlit's AppTest on the shipped default (real runs, no mocks)."""

import pytest
from test_app import charts, open_page, run_until_done, stop_jobs, values  # noqa: F401 (a fixture)

from plasticity.store import RunStore

PAGE = "pages/sensitivity.py"


def test_the_page_runs_every_layer_at_every_ratio_for_the_criterion_and_random(tmp_path, monkeypatch):
    monkeypatch.setenv("PLASTICITY_HOME", str(tmp_path))
    at = open_page(PAGE, sensitivity_ratios=["50"])
    assert not at.exception and not at.error
    assert at.title[0].value == "Layer sensitivity"
    assert at.button(key="run_missing").label == "Run the 4 missing runs"  # 2 layers x (l1, random)
    assert (at.dataframe[0].value["status"] == "missing").all()

    at.button(key="run_missing").click().run()
    run_until_done(at, "sensitivity_job", timeout=300)  # one torch thread on a machine that may be busy
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert (table["status"] == "done").all()
    assert list(table["layer"].unique()) == ["conv1", "conv2"]

    figure = charts(at)["Accuracy right after pruning, one layer pruned at a time"]
    assert [trace.type for trace in figure.data] == ["heatmap", "heatmap"]
    l1 = values(figure.data[0].z)  # layers by ratios, in percent
    expected = table[table["criterion"] == "l1"].pivot(index="layer", columns="ratio", values="acc_pruned") * 100
    assert l1 == expected.loc[["conv1", "conv2"]].to_numpy().tolist()
    lines = charts(at)["Accuracy right after pruning per layer (random dashed)"]
    assert {trace.name for trace in lines.data} == {
        f"{layer}, {c}" for layer in ("conv1", "conv2") for c in ("l1", "random")
    }


def test_prune_and_recover_draws_a_schedule_s_cuts_on_its_recovery_curve():
    at = open_page("pages/prune.py", schedule="agp", finetune_epochs="2", ratio="60")
    run_until_done(at, "prune_job", timeout=300)
    assert not at.exception and not at.error
    figure = charts(at)["Recovery while fine-tuning"]
    curves = [trace for trace in figure.data if trace.name in ("l1", "random")]
    assert len(curves) == 2
    for trace in curves:
        assert values(trace.x) == [0, 1, 1, 2]  # cut, fine-tuned, cut again, fine-tuned
        assert list(trace.marker.symbol) == ["triangle-down", "circle", "triangle-down", "circle"]


def test_the_budget_comparison_runs_from_its_button_and_draws_the_four_allocations(tmp_path, monkeypatch):
    monkeypatch.setenv("PLASTICITY_HOME", str(tmp_path))
    query = {"sensitivity_ratios": ["50"], "budget_targets": ["50"], "budget_finetune_epochs": "1"}
    at = open_page(PAGE, **query)
    assert not at.exception and not at.error
    assert at.button(key="run_budget").label == "Run the budget comparison"
    assert "budget_job" not in at.session_state  # a visit plans and runs nothing
    assert "MACs budget" not in " ".join(charts(at))

    at.button(key="run_budget").click().run()
    run_until_done(at, "budget_job", timeout=300)
    assert not at.exception and not at.error
    assert at.button(key="run_budget").label == "Every run is done"
    table = at.dataframe[1].value  # the sensitivity table, then the budget's
    assert (table["status"] == "done").all()
    assert sorted(table["allocation"]) == ["global", "random-global", "sensitivity", "uniform"]
    assert (table["macs_pruned"] <= 0.5 * table["macs_base"]).all()  # every allocation meets the target

    figure = charts(at)["One MACs budget spent four ways, fine-tuned alike (band: min to max over seeds)"]
    tuned = {trace.name: trace for trace in figure.data if trace.mode == "lines+markers" and trace.yaxis == "y2"}
    assert set(tuned) == {"sensitivity", "uniform", "global", "random-global"}
    for name, trace in tuned.items():
        assert values(trace.x) == [50]
        assert abs(values(trace.y)[0] - table.loc[table["allocation"] == name, "acc_final"].mean() * 100) < 1e-6


def test_random_vs_criterion_runs_every_cell_with_the_picked_schedule(tmp_path, monkeypatch):
    monkeypatch.setenv("PLASTICITY_HOME", str(tmp_path))
    at = open_page("pages/compare.py", criteria=["l1"], ratios=["60"], seeds="1", finetune_epochs="2", schedule="agp")
    assert not at.exception and not at.error
    assert at.selectbox(key="schedule").value == "agp"
    at.button(key="run_missing").click().run()
    run_until_done(at, "compare_job", timeout=300)
    assert not at.exception and not at.error
    assert (at.dataframe[0].value["status"] == "done").all()
    (run,) = RunStore(tmp_path).runs(kind="prune")
    assert run.config["schedule"] == "agp:2"
    assert [step["ratio"] for step in run.result["steps"]] == pytest.approx([0.6 * (1 - 0.5**3), 0.6], abs=0.02)


def test_several_ratios_recovery_curves_share_fixed_axes_whatever_the_ratios(tmp_path, monkeypatch):
    monkeypatch.setenv("PLASTICITY_HOME", str(tmp_path))
    at = open_page("pages/prune.py", overlay_ratios=["30", "90"], finetune_epochs="1", ratio="30")
    run_until_done(at, "prune_job", timeout=300)  # the slider's own runs: l1 and random at 30%
    assert at.button(key="run_ratios").label == "Run the 2 missing runs"  # 30% is the slider's, read from the store
    at.button(key="run_ratios").click().run()
    run_until_done(at, "ratios_job", timeout=300)
    assert not at.exception and not at.error
    title = "Recovery at several ratios (random dashed)"
    both = charts(at)[title]
    curves = {trace.name: trace for trace in both.data if trace.mode == "lines+markers"}
    assert set(curves) == {"l1 at 30%", "random at 30%", "l1 at 90%", "random at 90%"}
    assert curves["l1 at 30%"].line.color == curves["random at 30%"].line.color != curves["l1 at 90%"].line.color
    assert curves["random at 90%"].line.dash == "dash"

    at.multiselect(key="overlay_ratios").set_value([30]).run()
    one = charts(at)[title]
    assert {trace.name for trace in one.data if trace.mode == "lines+markers"} == {"l1 at 30%", "random at 30%"}
    for axis in ("xaxis", "yaxis"):
        assert list(one.layout[axis].range) == list(both.layout[axis].range)
    assert list(one.layout.yaxis.range) == [0, 100.5]
