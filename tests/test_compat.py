"""What earlier versions wrote stays readable: the CLI's JSON and a run store made by commit 15f8712.

`tests/fixtures/cli/*.json` are the `--json` outputs of that commit on the shipped default (one torch
thread; the commands are in COMMANDS), and `tests/fixtures/store-15f8712/runs.sqlite` is the run store
those commands left (its checkpoint files are not kept). Timings differ from run to run and are not
compared; accuracies may differ by an image or two on another CPU.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch

from plasticity import cli
from plasticity.runs import HbfpConfig, MaskConfig, PruneConfig, TrainConfig, run_hbfp, run_masks, run_prune
from plasticity.store import RunStore
from plasticity.studies import PretrainingStudy, Task

FIXTURES = Path(__file__).parent / "fixtures"
COMMANDS = {
    "prune": "prune --criterion l1 --ratio 0.5 --finetune-epochs 1",
    "compare": "compare --criteria random,l1 --ratios 0.5 --seeds 0 --finetune-epochs 1",
    "hbfp": "hbfp --max-rounds 1 --optimise-epochs 1 --retrain-epochs 1",
    "masks": "masks --n-masks 3 --finetune-epochs 1",
    "pretraining": "pretraining --ratios 0.5 --seeds 0 --epochs 1 --source-epochs 1 --finetune-epochs 1",
    "train": "train --epochs 1 --seed 3",
}
TIMINGS = {"seconds", "train_seconds", "eval_seconds", "latency_ms", "latency_ms_base", "latency_ms_pruned"}
# Fields added since, each on purpose (a reader of the old output still finds every field it knew).
ADDED = {"latency_range_ms_base", "latency_range_ms_pruned", "latency_threads", "latency_under_load"}


def assert_same(actual, expected, where: str = "") -> None:
    """Equal, except timings (ignored), the fields in ADDED, and floats (within two test images, or a
    relative 1e-3)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(expected) <= set(actual), f"{where}: keys missing"
        assert set(actual) - set(expected) <= ADDED, f"{where}: keys added"
        for name, value in expected.items():
            if name not in TIMINGS:
                assert_same(actual[name], value, f"{where}.{name}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: lengths differ"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=1e-3, abs=0.0035), where
    else:
        assert actual == expected, where


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_cli_json_is_what_15f8712_printed(command, tmp_path, capsys, one_thread):
    assert cli.main([*COMMANDS[command].split(), "--home", str(tmp_path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert_same(printed, json.loads((FIXTURES / "cli" / f"{command}.json").read_text()), command)


@pytest.fixture
def old_store(tmp_path) -> RunStore:
    shutil.copy(FIXTURES / "store-15f8712" / "runs.sqlite", tmp_path / "runs.sqlite")
    return RunStore(tmp_path)


def _row_count(store: RunStore) -> int:
    with sqlite3.connect(store.path) as conn:
        return conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def test_a_store_written_by_15f8712_opens_and_its_runs_are_reused(old_store):
    golden = {name: json.loads((FIXTURES / "cli" / f"{name}.json").read_text()) for name in COMMANDS}
    assert len(old_store.runs()) == 12
    prune = PruneConfig(TrainConfig(), "l1", 0.5, 0, 1)
    assert prune.key == golden["prune"]["key"]
    assert run_prune(prune, old_store) == old_store.get(prune.key).result
    random = PruneConfig(TrainConfig(), "random", 0.5, 0, 1)
    assert random.key == golden["compare"][0]["key"]
    masks = MaskConfig(TrainConfig(), n_masks=3, finetune_epochs=1)
    assert masks.key == golden["masks"]["key"]
    assert run_masks(masks, old_store) == old_store.get(masks.key).result
    hbfp = HbfpConfig(TrainConfig(), max_rounds=1, optimise_epochs=1, retrain_epochs=1)
    assert hbfp.key == golden["hbfp"]["key"]
    assert run_hbfp(hbfp, old_store) == old_store.get(hbfp.key).result
    study = PretrainingStudy(
        "lenet5", Task.parse("mnist-5k:5-9"), Task.parse("mnist-5k:0-4"), "l1", (0.5,), (0,),
        epochs=1, source_epochs=1, finetune_epochs=1,
    )  # fmt: skip
    assert [planned.config.key for planned in study.plan()] == [row["key"] for row in golden["pretraining"]["runs"]]
    rows = study.run(old_store)
    assert [row["key"] for row in rows] == [row["key"] for row in golden["pretraining"]["runs"]]
    assert TrainConfig(epochs=1, seed=3).key == golden["train"]["key"]
    assert old_store.get(golden["train"]["key"]).status == "done"
    assert _row_count(old_store) == 12  # nothing was computed again
