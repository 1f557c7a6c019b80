"""Per-layer sensitivity, BatchNorm recalibration and pruning schedules, on real data and real pruning."""

import copy
import json

import pytest
import torch

from plasticity.cli import main
from plasticity.errors import InvalidConfigError
from plasticity.pruning.budget import Budget, sensitivity_counts
from plasticity.pruning.schedule import Schedule
from plasticity.runs import PruneConfig, TrainConfig, get_base, run_prune
from plasticity.store import RunStore
from plasticity.studies.budget import BudgetStudy, allocate, sensitivity_curves
from plasticity.studies.sensitivity import STALE, Sensitivity, groups_of
from plasticity.train import Callback, recalibrate_batchnorm
from plasticity.views import recovery_table

RESNET = TrainConfig(model="resnet20", dataset="digits", epochs=0)  # a residual network, untrained: shapes only


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    """A ResNet-20 for the 8x8 digits, in its own store, shared by this module's tests."""
    store = RunStore(tmp_path_factory.mktemp("resnet"))
    return store, get_base(RESNET, store)


def test_each_cell_prunes_one_group_alone_and_the_cli_prints_a_row_per_layer_and_ratio(tmp_path, capsys):
    code = main(["sensitivity", "--criterion", "l1", "--ratios", "0.25", "--home", str(tmp_path), "--json"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["layer"], r["ratio"], r["criterion"]) for r in rows] == [
        (layer, ratio, criterion) for criterion in ("l1", "random") for layer in ("conv1", "conv2") for ratio in (0.25,)
    ]
    full = {"conv1": 20, "conv2": 50}
    for row in rows:
        gone = {row["layer"]: int(row["ratio"] * full[row["layer"]] + 0.5)}  # rounded half up, as everywhere
        assert row["channels"] == {name: [n - gone.get(name, 0), n] for name, n in full.items()}
        assert 0 <= row["acc_pruned"] <= row["acc_base"] + 0.05 and row["acc_final"] == row["acc_pruned"]


def test_a_residual_group_is_pruned_as_a_whole(resnet):
    store, base = resnet
    groups = {group.root: group for group in groups_of("resnet20", "digits", 1.0)}
    coupled = max(groups.values(), key=lambda group: len(group.layers))
    assert len(coupled.layers) >= 4  # the stem and every block's second conv of a stage share one add
    study = Sensitivity(RESNET, ("l1",), (0.5,))
    (planned,) = [p for p in study.plan() if p.tags["layer"] == coupled.root]
    result = run_prune(planned.config, store, base=base)
    for name, (kept, original) in result["channels"].items():
        assert kept == (original // 2 if name in coupled.layers else original), name


def test_recalibration_changes_only_batchnorm_buffers(resnet):
    store, base = resnet
    model = copy.deepcopy(base.model)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    recalibrate_batchnorm(model, base.data, 3, 64)
    changed = {name for name, value in model.state_dict().items() if not torch.equal(value, before[name])}
    norms = [name for name, module in model.named_modules() if isinstance(module, torch.nn.BatchNorm2d)]
    buffers = {
        f"{name}.{buffer}" for name in norms for buffer in ("running_mean", "running_var", "num_batches_tracked")
    }
    assert changed and changed <= buffers
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))

    config = PruneConfig(RESNET, "l1", 0.25, 0, 0, recalibrate_bn=4)
    assert PruneConfig(RESNET, "l1", 0.25, 0, 0).to_dict().keys() == config.to_dict().keys() - {"recalibrate_bn"}
    result = run_prune(config, store, base=base)
    assert 0 <= result[STALE] <= 1 and 0 <= result["acc_pruned"] <= 1


def test_agp_follows_zhu_and_gupta_and_iterative_rises_evenly():
    final, steps = 0.9, 4
    agp = Schedule.parse("agp:4").ratios(final)
    assert agp == pytest.approx([final + (0 - final) * (1 - k / steps) ** 3 for k in range(1, steps + 1)])
    assert Schedule.parse("iterative:3").ratios(0.6) == pytest.approx([0.2, 0.4, 0.6])
    assert Schedule.parse("one-shot").ratios(0.6) == [0.6]
    for bad in ("agp", "agp:1", "gradual:3", "iterative:x"):
        with pytest.raises(InvalidConfigError):
            Schedule.parse(bad)
    with pytest.raises(InvalidConfigError, match="split evenly"):
        PruneConfig(finetune_epochs=3, schedule="agp:2")
    with pytest.raises(InvalidConfigError, match="mode remove"):
        PruneConfig(finetune_epochs=2, schedule="agp:2", mode="mask")
    assert PruneConfig(schedule="one-shot").key == PruneConfig().key


class CountSteps(Callback):
    def __init__(self):
        self.steps = 0

    def on_after_optimizer_step(self, trainer) -> None:
        self.steps += 1


def test_a_schedule_fine_tunes_as_many_steps_as_one_shot_and_ends_at_its_structure(store, default_base):
    results, counted = {}, {}
    for schedule in ("one-shot", "iterative:2"):
        counted[schedule] = CountSteps()
        config = PruneConfig(default_base.config, "l1", 0.5, 0, 2, schedule=schedule)
        results[schedule] = run_prune(config, store, base=default_base, callbacks=[counted[schedule]])
    assert counted["iterative:2"].steps == counted["one-shot"].steps > 0
    iterative = results["iterative:2"]
    assert iterative["channels"] == results["one-shot"]["channels"]
    assert iterative["macs_pruned"] == results["one-shot"]["macs_pruned"]
    assert [(s["step"], s["ratio"], s["epoch"]) for s in iterative["steps"]] == [(1, 0.25, 0), (2, 0.5, 1)]
    assert iterative["steps"][0]["channels"] == {"conv1": [15, 20], "conv2": [37, 50]}
    assert [p["epoch"] for p in iterative["curve"]] == [1, 2]
    assert iterative["acc_pruned"] == iterative["steps"][-1]["acc_pruned"]
    assert "steps" not in results["one-shot"]
    drawn = recovery_table({"iterative": iterative})  # the curve drops again at the second cut
    assert list(zip(drawn["epoch"], drawn["cut"])) == [(0, True), (1, False), (1, True), (2, False)]


def test_every_allocation_meets_the_macs_target_within_one_filter_per_layer(store, default_base):
    analysis = Sensitivity(default_base.config, ("l1",), (0.25, 0.5, 0.75))
    analysis.run(store)
    allocations = allocate(default_base, sensitivity_curves(analysis, store), "l1", (0.5,), (0, 1))
    assert [a.name for a in allocations] == ["sensitivity", "uniform", "global", "random-global", "random-global"]
    budget = Budget(default_base.model, default_base.data)
    target = budget.target(0.5)
    for allocation in allocations:
        counts = {root: round(ratio * budget.sizes[root]) for root, ratio in allocation.layer_ratios}
        assert budget.macs(counts) <= target, allocation
        assert budget.macs({root: max(0, n - 1) for root, n in counts.items()}) > target, allocation  # tight
    assert allocations[3].layer_ratios != allocations[4].layer_ratios  # one random draw per seed
    study = BudgetStudy(default_base.config, "l1", allocations, seeds=(0,), finetune_epochs=0)
    assert [p.config.criterion for p in study.plan()] == ["l1", "l1", "l1", "random", "random"]


def test_the_sensitivity_allocation_prunes_the_group_that_loses_nothing_before_the_one_that_loses(default_base):
    budget = Budget(default_base.model, default_base.data)
    acc = default_base.result["acc"]
    curves = {  # conv1 loses at every ratio, conv2 at none: one tolerance for both leaves conv1 whole
        "conv1": [(0.25, acc - 0.05), (0.5, acc - 0.2), (0.75, acc - 0.5)],
        "conv2": [(0.25, acc), (0.5, acc + 0.001), (0.75, acc)],
    }
    counts = sensitivity_counts(budget, curves, acc, budget.target(0.8))
    assert counts["conv1"] == 0 and 0 < counts["conv2"] <= 0.75 * 50
    assert budget.macs(counts) <= budget.target(0.8) < budget.macs({"conv2": counts["conv2"] - 1})


def test_a_budget_with_recalibration_recalibrates_its_analysis_and_every_allocation(tmp_path, capsys):
    model = "tests/user_model.py:small_cnn"  # two convs, each with BatchNorm: a small budget to plan
    args = ["budget", "--model", model, "--dataset", "digits", "--epochs", "0", "--ratios", "0.5", "--targets", "0.7"]
    args += ["--finetune-epochs", "0", "--recalibrate-bn", "2", "--home", str(tmp_path), "--json"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["allocation"] for row in rows] == ["sensitivity", "uniform", "global", "random-global"]
    for row in rows:  # every cut measured twice: with the base's statistics, then recalibrated
        assert 0 <= row[STALE] <= 1 and 0 <= row["acc_pruned"] <= 1 and row["macs_pruned"] < row["macs_base"]
    analysis = Sensitivity(TrainConfig(model=model, dataset="digits", epochs=0), ("l1",), (0.5,), recalibrate_bn=2)
    assert analysis.missing(RunStore(tmp_path)) == 0  # the allocations were planned from the recalibrated analysis
    pruned = [run for run in RunStore(tmp_path).runs() if run.kind != "train"]
    assert {run.config.get("recalibrate_bn") for run in pruned} == {2}
