"""A sweep on a Ray cluster set up the way docs/cluster.md says: `ray start --head` (2 CPUs), then `plasticity
compare --executor ray --ray-address auto` on its node, and through Ray Client (`ray://HOST:PORT`), each
giving the results of the same sweep in this process.

The head is this module's own: its own temporary directory (`RAY_TMPDIR`), free ports, its own token (Ray's
token authentication, on for both the head and the drivers), and `ray start --block`, so that ending that one
process stops the cluster and no other Ray on the machine is touched (`ray stop` would stop every one)."""

import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from plasticity.cli import main

REPO = Path(__file__).resolve().parents[1]
SWEEP = [
    "compare", "--dataset", "digits", "--epochs", "1", "--criteria", "random,l1", "--ratios", "0.5",
    "--seeds", "0", "--finetune-epochs", "1", "--json",
]  # fmt: skip
TIMINGS = ("seconds", "train_seconds")  # and every latency field: measured, so never the same twice
START_UP_LIMIT_S = 180  # `ray start` on a loaded 2-core machine has taken over 30 s


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def head():
    """`ray start --head --num-cpus 2` in a directory of its own; its environment, for the drivers."""
    pytest.importorskip("ray")
    ray_cli = Path(sys.executable).with_name("ray")
    if not ray_cli.exists():
        pytest.skip(f"no `ray` command beside {sys.executable}")
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env = {name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"}
    env.update(
        RAY_TMPDIR=temp,
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(32),
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONPATH=str(REPO),  # the workers import the plasticity under test
    )
    client_port = _free_port()
    ports = ["--port", str(_free_port()), "--ray-client-server-port", str(client_port)]
    ports += ["--dashboard-agent-listen-port", str(_free_port())]
    log = Path(temp) / "ray-start.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(ray_cli), "start", "--head", "--block", "--num-cpus", "2", "--include-dashboard", "false", *ports],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    address_file = Path(temp) / "ray" / "ray_current_cluster"
    deadline = time.monotonic() + START_UP_LIMIT_S
    while not (address_file.exists() and _listening(client_port)):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process, temp)
            lines = log.read_text().strip().splitlines() if log.exists() else []
            pytest.skip(f"`ray start --head` cannot run here: {lines[-1] if lines else 'no output'}")
        time.sleep(0.5)
    yield {"env": env, "client": f"ray://127.0.0.1:{client_port}"}
    _stop(process, temp)


def _stop(process: subprocess.Popen, temp: str) -> None:
    """`ray start --block` stops the processes it started when it is sent SIGTERM."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def in_process(tmp_path_factory) -> list[dict]:
    """The sweep's rows computed in this process at one torch thread, as a one-CPU Ray task computes them
    (CPU training is bit-for-bit repeatable at a fixed thread count)."""
    home, threads, out = tmp_path_factory.mktemp("in-process"), torch.get_num_threads(), io.StringIO()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            assert main([*SWEEP, "--home", str(home)]) == 0
    finally:
        torch.set_num_threads(threads)
    return _without_timings(json.loads(out.getvalue()))


def _without_timings(rows: list[dict]) -> list[dict]:
    return [
        {name: value for name, value in row.items() if name not in TIMINGS and not name.startswith("latency")}
        for row in rows
    ]


def _driver(head: dict, home: Path, address: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "plasticity.cli", *SWEEP, "--home", str(home), "--executor", "ray"]
        + ["--ray-address", address],
        env=head["env"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_ray_address_auto_joins_the_cluster_ray_start_set_up_and_gives_the_in_process_results(
    head, in_process, tmp_path
):
    driver = _driver(head, tmp_path / "home", "auto")
    assert driver.returncode == 0, driver.stderr[-2000:]
    assert _without_timings(json.loads(driver.stdout)) == in_process
    assert "2/2 done, 0 running, 0 failed" in driver.stderr


def test_ray_client_runs_the_sweep_through_the_head_s_client_port(head, in_process, tmp_path):
    driver = _driver(head, tmp_path / "home", head["client"])
    assert driver.returncode == 0, driver.stderr[-2000:]
    assert _without_timings(json.loads(driver.stdout)) == in_process
