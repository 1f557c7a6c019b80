"""Latency that means something: the base and the pruned model timed in one interleaved measurement, at a
stated number of threads, with its spread; a measurement whose repeats spread widely is marked under load."""

import pytest
import torch

from plasticity.pruning import cost
from plasticity.pruning.cost import Latencies, Latency, interleaved_latency
from plasticity.runs import PruneConfig, run_prune
from plasticity.runs import prune as prune_runs
from plasticity.store import RunStore
from plasticity.views import cost_table


def test_models_are_timed_in_turn_repeat_after_repeat_and_left_as_they_were(default_base):
    calls = []
    pruned = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10)).train()
    models = {"base": default_base.model, "pruned": pruned}
    modes = {name: model.training for name, model in models.items()}
    hooks = [
        model.register_forward_hook(lambda module, args, output, name=name: calls.append(name))
        for name, model in models.items()
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        measured = interleaved_latency(models, default_base.data.example_input(8), repeats=4, threads=2)
        assert torch.get_num_threads() == 1  # measured at 2 threads, the caller's count restored
    finally:
        torch.set_num_threads(threads)
        for hook in hooks:
            hook.remove()

    assert calls == ["base", "pruned"] + ["base", "pruned", "pruned", "base", "base", "pruned", "pruned", "base"]
    assert measured.threads == 2
    assert {name: model.training for name, model in models.items()} == modes  # each model's mode as it was
    for latency in measured.models.values():
        assert 0 < latency.low <= latency.median <= latency.high


@pytest.fixture(scope="module")
def measured_run(default_base, tmp_path_factory):
    """A pruned run (no fine-tuning: its latency is measured all the same), and the measurements it took."""
    measurements = []

    def spy(models, inputs, *args, **kwargs):
        measurements.append(sorted(models))
        return interleaved_latency(models, inputs, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(prune_runs, "interleaved_latency", spy)
        config = PruneConfig(default_base.config, "l1", 0.5, 0, 0)
        result = run_prune(config, RunStore(tmp_path_factory.mktemp("latency")), base=default_base)
    return result, measurements


def test_a_pruned_run_stores_its_latency_and_the_bases_from_one_measurement(measured_run):
    result, measurements = measured_run
    assert measurements == [["base", "pruned"]]
    assert result["latency_threads"] == cost.CORES
    for model in ("base", "pruned"):
        low, high = result[f"latency_range_ms_{model}"]
        assert low <= result[f"latency_ms_{model}"] <= high
    assert isinstance(result["latency_under_load"], bool)


def test_latency_measured_under_load_is_marked_and_left_out_of_the_cost_table(measured_run):
    steady = Latencies({"base": Latency(10.0, 9.8, 10.3), "pruned": Latency(5.0, 4.9, 5.1)}, threads=2)
    loaded = Latencies({"base": Latency(10.0, 7.0, 16.0), "pruned": Latency(5.0, 4.9, 5.1)}, threads=2)
    assert not steady.under_load and loaded.under_load

    result, _ = measured_run
    shown = cost_table({"l1": {**result, "latency_under_load": False}})
    assert shown.loc["latency (ms / 256 images)", "l1"] == result["latency_ms_pruned"]
    assert shown.loc["latency, middle half of the repeats (ms)", "l1"] == result["latency_range_ms_pruned"]
    hidden = cost_table({"l1": {**result, "latency_under_load": True}})
    assert hidden.loc["latency (ms / 256 images)"].isna().all()
