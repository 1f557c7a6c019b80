"""docs/extending.md is true of the code: its Python blocks run, in order, in a fresh process.

A fresh process, because they register a criterion, a model, a data set and a drop rule for good:
in this process they would join the pickers and parametrised lists of the other tests.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def test_every_python_block_of_the_extending_guide_runs(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 6  # a criterion, its run, a model, a data set, their base, a drop rule, a study
    script = tmp_path / "walk.py"
    script.write_text("\n\n".join(blocks))
    env = {**os.environ, "PLASTICITY_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("l-inf ") and "'conv1': [10, 20]" in lines[0]
    assert lines[1].endswith("{'0': 16, '2': 32}")
    assert lines[2].startswith("hbfp-")
    assert "'budget': 1, 'seeds': 1" in lines[3] and lines[4] == "[{'budget': 1, 'status': 'done'}]"
