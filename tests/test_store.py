import pickle
import sqlite3
import threading

import pytest
import torch

from plasticity.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from plasticity.errors import CheckpointError
from plasticity.models import ModelSpec
from plasticity.runs import PruneConfig, TrainConfig, run_prune
from plasticity.store import RunStore
from plasticity.studies import Comparison


def test_run_lifecycle_and_history_round_trip(store, default_base):
    store.start("k1", "train", {"a": 1})
    assert store.get("k1").status == "running"
    store.finish("k1", {"acc": 0.5}, default_base.history)
    run = store.get("k1")
    assert (run.status, run.result, run.config) == ("done", {"acc": 0.5}, {"a": 1})
    history = store.history("k1")
    assert torch.equal(history.matrix("conv2"), default_base.history.matrix("conv2"))
    store.start("k1", "train", {"a": 2})  # a done run is never replaced
    assert store.get("k1").config == {"a": 1}


def test_failed_and_interrupted_runs_are_replaced_on_retry(store):
    store.start("k", "prune", {})
    store.fail("k", "DivergedError: boom")
    assert store.get("k").status == "failed" and "boom" in store.get("k").error
    store.start("k", "prune", {})
    assert store.get("k").status == "running" and store.get("k").error is None


def test_two_writers_at_once(store):
    def write(prefix):
        for i in range(25):
            store.start(f"{prefix}{i}", "prune", {"i": i})
            store.finish(f"{prefix}{i}", {"i": i})

    threads = [threading.Thread(target=write, args=(p,)) for p in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.runs(status="done")) == 50


def test_many_runs_are_read_in_one_call_as_one_at_a_time_reads_them(store):
    keys = [f"k{i}" for i in range(1203)]  # more than one statement's worth
    for i, key in enumerate(keys[:1100]):
        store.start(key, "prune", {"i": i})
        if i % 2:
            store.finish(key, {"i": i})
    found = store.get_many([*keys, "k0"])
    assert set(found) == set(keys[:1100])
    assert all(found[key] == store.get(key) for key in keys[:1100:97])
    assert store.get_many([]) == {}


def test_a_store_another_process_is_creating_reads_as_empty_until_its_tables_are_there(tmp_path):
    store = RunStore(tmp_path)
    with sqlite3.connect(store.path) as conn:  # the file exists, its tables not yet (as while another creates it)
        conn.execute("PRAGMA journal_mode=WAL")
    assert store.runs() == [] and store.get("k") is None and store.history("k") is None
    store.start("k", "prune", {})
    assert [run.key for run in store.runs()] == ["k"]


def test_compare_resumes_without_redoing_finished_runs(store, default_base):
    calls = iter([False, False, True])  # stop before the third run, as an interrupted process would
    first = Comparison(TrainConfig(), ["random", "l1"], [0.5], [0], finetune_epochs=1).run(
        store, should_stop=lambda: next(calls)
    )
    assert len(first) == 2
    finished = {r.key: r.finished for r in store.runs(kind="prune")}
    again = Comparison(TrainConfig(), ["random", "l1"], [0.5, 0.25], [0], finetune_epochs=1).run(store)
    assert len(again) == 4 and again[:1] == first[:1]
    assert {r.key: r.finished for r in store.runs(kind="prune") if r.key in finished} == finished
    assert all(r.status == "done" for r in store.runs())


def test_a_diverging_fine_tune_is_marked_failed(store, default_base):
    from plasticity.errors import DivergedError

    config = PruneConfig(criterion="l1", ratio=0.5, finetune_epochs=1, lr=1e12)
    with pytest.raises(DivergedError):
        run_prune(config, store, base=default_base)
    run = store.get(config.key)
    assert run.status == "failed" and "DivergedError" in run.error
    assert run.result is None and store.history(config.key) is None


def test_pruned_checkpoint_rebuilds_the_smaller_model(store, default_base):
    config = PruneConfig(criterion="l1", ratio=0.5, finetune_epochs=1)
    result = run_prune(config, store, base=default_base)
    checkpoint = load_checkpoint(store.checkpoint_path(config.key))
    model = checkpoint.build_model()
    assert model.conv1.out_channels == 10 and model.conv2.out_channels == 25
    from plasticity.train import accuracy

    assert accuracy(model, default_base.data, default_base.data.test) == result["acc_final"]
    assert sorted(checkpoint.structure["conv1"]) == checkpoint.structure["conv1"]


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_a_crafted_pickle_is_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pt"
    torch.save({"format": "plasticity/checkpoint", "x": _Payload()}, evil)
    with pytest.raises(CheckpointError, match="not a readable plasticity checkpoint"):
        load_checkpoint(evil)
    assert not (tmp_path / "PWNED").exists()
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)
    assert not (tmp_path / "PWNED").exists()


def test_corrupt_truncated_and_foreign_files(tmp_path, default_base):
    good = tmp_path / "good.pt"
    spec = ModelSpec("lenet5", 1, 10, 28)
    save_checkpoint(Checkpoint(spec, TrainConfig().to_dict(), default_base.model.state_dict()), good)
    assert load_checkpoint(good).spec == spec
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:5000])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 100)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    for path, message in (
        (truncated, "not a readable"),
        (garbage, "not a readable"),
        (foreign, "not a plasticity"),
        (tmp_path / "missing.pt", "no checkpoint file"),
    ):
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)


def test_summarise_averages_each_cell_over_seeds():
    from plasticity.studies import aggregate

    results = [
        {"criterion": "l1", "ratio": 0.5, "acc_pruned": 0.5, "acc_final": 0.9},
        {"criterion": "l1", "ratio": 0.5, "acc_pruned": 0.7, "acc_final": 0.94},
        {"criterion": "random", "ratio": 0.5, "acc_pruned": 0.2, "acc_final": 0.8},
    ]
    l1, rand = aggregate(results, ("criterion", "ratio"), ("acc_pruned", "acc_final"))
    assert (l1["criterion"], l1["seeds"]) == ("l1", 2) and rand["seeds"] == 1
    assert l1["acc_pruned_mean"] == pytest.approx(0.6) and l1["acc_final_mean"] == pytest.approx(0.92)
    assert l1["acc_pruned_std"] == pytest.approx(0.1414213, rel=1e-5) and rand["acc_final_std"] == 0.0


def test_many_first_writes_to_a_new_store_at_once(tmp_path):
    """The app's warm-up and the first session create a fresh store together: nobody sees "locked"."""
    errors = []

    def open_store(home, key):
        try:
            store = RunStore(home)
            store.start(key, "train", {})
            store.fail(key, "a test run")
        except Exception as exc:  # collected, asserted below
            errors.append(repr(exc))

    for round_ in range(20):
        threads = [threading.Thread(target=open_store, args=(tmp_path / str(round_), f"k{i}")) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    with sqlite3.connect(tmp_path / "0" / "runs.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
