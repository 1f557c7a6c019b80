"""What the run store promises under faults, with real files: one computation per run across processes,
a done row never overwritten, one-line errors for a bad home or database, reading without writing, a full
disk that loses only the run in progress, schema versions, relocatable paths, and checkpoints that are
verified before anything is stored under their key."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
import torch

from plasticity import cli
from plasticity.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from plasticity.errors import CheckpointError, StoreError
from plasticity.store import SCHEMA_VERSION, RunStore

FIXTURE_STORE = Path(__file__).parent / "fixtures" / "store-15f8712" / "runs.sqlite"

HOLDER = """
import sys, time
from plasticity.store import RunStore
store = RunStore(sys.argv[1])
assert store.start("k", "train", {})
print("claimed", flush=True)
time.sleep(float(sys.argv[2]))
store.finish("k", {"by": "the other process"})
"""


def _spec(base):
    return base.config.spec(base.data)


def _claim_in_another_process(home: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(home), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "claimed"
    return holder


def test_a_run_another_process_computes_is_waited_for_and_never_redone(tmp_path):
    holder = _claim_in_another_process(tmp_path, 1.5)
    store = RunStore(tmp_path)
    assert store.get("k").status == "running" and store.get("k").owner == f"{holder.pid}@{socket.gethostname()}"
    assert store.start("k", "train", {}) is False  # waited for the other process, then found the run done
    assert store.get("k").result == {"by": "the other process"}
    assert holder.wait(30) == 0
    assert store.finish("k", {"by": "this process"}) is False  # a done row is never overwritten
    assert store.start("k", "train", {"other": "config"}) is False
    assert store.get("k").result == {"by": "the other process"} and store.get("k").config == {}


def test_a_dead_owner_s_claim_expires_and_its_run_is_marked_failed(tmp_path):
    holder = _claim_in_another_process(tmp_path, 600)
    holder.kill()
    holder.wait(30)
    store = RunStore(tmp_path)
    assert store.get("k").status == "running"  # reading writes nothing
    assert store.start("j", "train", {})  # the first write marks the dead owner's run failed
    assert store.get("k").status == "failed" and "ended" in store.get("k").error
    assert store.start("k", "train", {}) and store.finish("k", {"by": "this process"})


def test_a_claim_from_another_host_expires_when_its_heartbeat_stops(tmp_path):
    store = RunStore(tmp_path)
    assert store.start("k", "train", {})
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE runs SET owner_host = 'elsewhere', claim = 'theirs', heartbeat = ?", (time.time() - 3600,))
    assert store.start("k", "train", {}) and store.get("k").owner.endswith(socket.gethostname())


def test_a_claim_whose_thread_ended_without_a_word_is_taken_over_at_once(tmp_path):
    store = RunStore(tmp_path)
    claimed, taken = threading.Event(), []

    def take_over() -> None:  # alive before the claimer ends, so it is another thread, never the claimer's id reused
        claimed.wait()
        taken.append(store.start("k", "train", {}) and store.finish("k", {"by": "the next"}))

    def claim_and_vanish() -> None:  # an error between start and finish that nothing caught
        assert store.start("k", "train", {})

    taker = threading.Thread(target=take_over, daemon=True)
    taker.start()
    claimer = threading.Thread(target=claim_and_vanish)
    claimer.start()
    claimer.join()
    claimed.set()
    taker.join(10)
    assert taken == [True]  # not waited for: the claiming thread is gone
    assert store.get("k").result == {"by": "the next"}


def _one_line_error(args: list[str], capsys) -> str:
    """The error line of a command that failed (after any progress bars on stderr)."""
    assert cli.main(args) == 2
    out, err = capsys.readouterr()
    last = err.rstrip("\n").split("\n")[-1]
    assert last.startswith("error: ") and len(last) < 400 and out == ""
    return last


def test_a_bad_home_or_database_is_one_line_that_says_what_to_do(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    assert "is a file, not a folder" in _one_line_error(["runs", "--home", str(a_file)], capsys)
    folder = tmp_path / "folder-as-database"
    (folder / "runs.sqlite").mkdir(parents=True)
    assert "is a folder, not a run store" in _one_line_error(["runs", "--home", str(folder)], capsys)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "runs.sqlite").write_bytes(os.urandom(8192))
    assert "damaged or not a run store: move it aside" in _one_line_error(["runs", "--home", str(garbage)], capsys)
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    (truncated / "runs.sqlite").write_bytes(FIXTURE_STORE.read_bytes()[:20_000])
    assert "damaged or not a run store" in _one_line_error(["runs", "--home", str(truncated)], capsys)
    newer = tmp_path / "newer"
    RunStore(newer).start("k", "train", {})
    with sqlite3.connect(newer / "runs.sqlite") as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    assert "written by a newer plasticity" in _one_line_error(["runs", "--home", str(newer)], capsys)


def test_listing_writes_nothing(tmp_path, capsys):
    home = tmp_path / "never-created"
    assert cli.main(["runs", "--home", str(home)]) == 0
    assert "0 runs" in capsys.readouterr().out and not home.exists()
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(FIXTURE_STORE, old / "runs.sqlite")
    before = (old / "runs.sqlite").read_bytes()
    assert len(RunStore(old).runs()) == 12
    assert (old / "runs.sqlite").read_bytes() == before  # an old store is migrated by a write, not a read


@contextlib.contextmanager
def _read_only(folder: Path):
    """`folder` read-only for real: a read-only bind mount as root (root ignores permissions), else chmod."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield
        folder.chmod(0o755)
        return
    if subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here to make a read-only folder")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        yield
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_a_read_only_home_lists_its_runs_and_refuses_new_ones_in_one_line(tmp_path, capsys):
    home = tmp_path / "home"
    store = RunStore(home)
    assert store.start("k", "train", {"model": "lenet5"}) and store.finish("k", {"acc": 0.97})
    with _read_only(home):
        assert cli.main(["runs", "--home", str(home), "--json"]) == 0
        assert [run["status"] for run in json.loads(capsys.readouterr().out)] == ["done"]
        with pytest.raises(StoreError, match="read-only here: runs can be listed but not computed"):
            RunStore(home).start("j", "train", {})


@contextlib.contextmanager
def _small_disk(folder: Path, size: str):
    if os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a small tmpfs, which needs root to mount")
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _fill(folder: Path, leave_chunks: int) -> list[Path]:
    chunks = []
    with contextlib.suppress(OSError):
        while True:
            chunks.append(folder / f"filler-{len(chunks)}")
            chunks[-1].write_bytes(b"\0" * 16384)
    for chunk in chunks[-1 - leave_chunks :]:
        chunk.unlink()
    return chunks[: -1 - leave_chunks]


def test_a_full_disk_loses_only_the_run_in_progress(tmp_path, capsys):
    small = ["--dataset", "digits", "--epochs", "1", "--device", "cpu"]
    prune = ["prune", *small, "--finetune-epochs", "1", "--criterion", "l1"]
    with _small_disk(tmp_path / "disk", "3m") as disk:
        home = ["--home", str(disk / "home")]
        assert cli.main(["train", *small, *home]) == 0
        capsys.readouterr()
        filler = _fill(disk, leave_chunks=3)  # room for the run's row, not for its checkpoint file
        assert "no space left on the device" in _one_line_error([*prune, *home], capsys)
        assert cli.main(["runs", *home, "--json"]) == 0  # the store still reads
        assert [run["status"] for run in json.loads(capsys.readouterr().out)][0] == "done"
        for chunk in filler:
            chunk.unlink()
        assert cli.main([*prune, *home, "--json"]) == 0
        capsys.readouterr()
        assert cli.main(["runs", *home, "--json"]) == 0
        assert [run["status"] for run in json.loads(capsys.readouterr().out)] == ["done", "done"]
        assert not list((disk / "home" / "checkpoints").glob("*.tmp"))


def test_named_columns_an_unfamiliar_row_and_a_relocated_store(tmp_path, default_base, capsys):
    home = tmp_path / "home"
    store = RunStore(home)
    assert store.start("k0", "train", {})  # creates the store, so a later version's extra column can be added
    with sqlite3.connect(store.path) as conn:
        conn.execute("ALTER TABLE histories ADD COLUMN added_later TEXT DEFAULT 'x'")
        conn.execute(
            "INSERT INTO runs (key, kind, status, config, result, started) VALUES ('odd', 'future-kind', 'done',"
            " '[not json', '42', 0)"
        )
    path = store.checkpoint_path("k0")
    save_checkpoint(Checkpoint(_spec(default_base), {}, default_base.model.state_dict()), path)
    assert store.finish("k0", {"acc": 0.9}, default_base.history, path)
    assert cli.main(["runs", "--home", str(home)]) == 0 and "future-kind" in capsys.readouterr().out

    moved = tmp_path / "moved"
    shutil.move(home, moved)
    run = RunStore(moved).done("k0")
    assert run.checkpoint == moved / "checkpoints" / "k0.pt" and run.checkpoint.exists()
    with sqlite3.connect(moved / "runs.sqlite") as conn:  # a row from before paths were relative
        conn.execute("UPDATE runs SET checkpoint = ? WHERE key = 'k0'", (str(home / "checkpoints" / "k0.pt"),))
    assert RunStore(moved).done("k0").checkpoint == moved / "checkpoints" / "k0.pt"


def test_a_checkpoint_whose_config_is_not_its_weights_stores_nothing(tmp_path, default_base, capsys):
    from plasticity.runs import TrainConfig

    home = tmp_path / "home"
    poisoned = tmp_path / "vgg16-config-lenet-weights.pt"
    config = TrainConfig(model="vgg16").to_dict()
    save_checkpoint(Checkpoint(_spec(default_base), config, default_base.model.state_dict()), poisoned)
    err = _one_line_error(["prune", "--checkpoint", str(poisoned), "--home", str(home)], capsys)
    assert "config describes a vgg16" in err and "its weights are a lenet5" in err
    wrong_weights = tmp_path / "wrong-weights.pt"
    state = {**default_base.model.state_dict(), "fc1.weight": torch.zeros(3, 3)}
    save_checkpoint(Checkpoint(_spec(default_base), TrainConfig().to_dict(), state), wrong_weights)
    assert "do not fit a lenet5" in _one_line_error(
        ["prune", "--checkpoint", str(wrong_weights), "--home", str(home)], capsys
    )
    assert RunStore(home).runs() == []


def test_checkpoint_files_that_are_not_ours_are_refused_before_torch_reads_them(tmp_path, default_base):
    text = tmp_path / "six.pt"
    text.write_text("hello\n")
    with pytest.raises(CheckpointError, match="not a torch zip archive"):
        load_checkpoint(text)
    good = tmp_path / "good.pt"
    save_checkpoint(Checkpoint(_spec(default_base), {}, default_base.model.state_dict()), good)
    deflated = tmp_path / "deflated.pt"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as target:
        for entry in source.infolist():
            target.writestr(entry.filename, source.read(entry))
    with pytest.raises(CheckpointError, match="compressed entries"):
        load_checkpoint(deflated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "plasticity/checkpoint", "x": Path("/")}, foreign)
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(foreign)
    assert "weights_only" not in str(refused.value) and "\x1b" not in str(refused.value)


def test_a_failed_checkpoint_write_leaves_no_temporary_file(tmp_path, default_base):
    target = tmp_path / "target.pt"
    target.mkdir()  # the rename onto a folder fails after the temporary file is written
    with pytest.raises(StoreError):
        save_checkpoint(Checkpoint(_spec(default_base), {}, default_base.model.state_dict()), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target.pt"]
