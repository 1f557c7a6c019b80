"""A process that used the dashboard's background work exits cleanly, even while that work is inside
torch: job workers are stopped and their threads joined at exit (plasticity.jobs.stop_jobs: joining the
thread, not only waiting for the job's end, leaves no worker unwinding out of torch while the interpreter
finalises), the warm-up is joined (ui.startup). Exiting with a thread inside torch aborts with
"terminate called without an active exception" and status 134."""

import os
import subprocess
import sys
from pathlib import Path

EXITS_MID_WORK = """
import tempfile, time
from plasticity.jobs import start_job, train_work
from plasticity.runs import TrainConfig
from plasticity.store import RunStore
from ui import startup
startup.warm_up_soon(0)
config = TrainConfig(dataset="digits", epochs=200, seed=11)
job = start_job("train", train_work(config, RunStore(tempfile.mkdtemp()), "cpu"))
job.wait_for(lambda state: "epoch" in state.message, 120)
"""


def test_a_process_exits_cleanly_while_its_background_work_is_inside_torch(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", EXITS_MID_WORK],
        cwd=Path(__file__).parent.parent,
        env={**os.environ, "PLASTICITY_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "terminate called" not in done.stderr, done.stderr[-2000:]
