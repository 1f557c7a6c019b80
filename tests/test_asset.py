"""`make asset` trains the same model whatever the caller's thread settings (scripts/make_default_asset.py
pins them). Checked on one epoch of the default recipe in two fresh processes, with OMP_NUM_THREADS 1 and
2: unpinned, the two differ after one epoch already (a thread team rounds its sums differently)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
ONE_EPOCH = """
import hashlib, runpy, sys, tempfile
import torch
from plasticity.runs import TrainConfig, train_base
from plasticity.store import RunStore
if sys.argv[1] == "pinned":
    runpy.run_path("scripts/make_default_asset.py", run_name="asset")["pinned"]()
base = train_base(TrainConfig(epochs=1), RunStore(tempfile.mkdtemp()), "cpu")
print(hashlib.sha1(b"".join(t.numpy().tobytes() for t in base.model.state_dict().values())).hexdigest())
"""


def _weights(threads: int, how: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(
        [sys.executable, "-c", ONE_EPOCH, how], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[-1]


def test_the_asset_script_trains_the_same_weights_at_any_thread_count():
    assert _weights(1, "pinned") == _weights(2, "pinned")
