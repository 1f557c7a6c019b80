"""Run every benchmark (`benchmarks/bench_*.py`) in turn, each in its own process: `make bench`.

    python benchmarks/run_all.py [--only library,attribution] [--out-dir benchmarks/results/latest]

Each benchmark runs with its own defaults and writes its figures to `<out-dir>/<name>.json` (the
figures quoted in the docs stay where they are, in benchmarks/results/). The quick ones (library,
attribution: minutes on a 2-core CPU) run first; hbfp and masks take tens of minutes, app needs Chromium.
A benchmark that fails is reported and the others still run; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
FIRST = ("library", "attribution")  # quick, so a short session still measures something


def benchmarks() -> list[str]:
    found = sorted(path.stem.removeprefix("bench_") for path in HERE.glob("bench_*.py"))
    return [name for name in FIRST if name in found] + [name for name in found if name not in FIRST]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help=f"comma-separated names among {', '.join(benchmarks())}")
    parser.add_argument("--out-dir", default=str(HERE / "results" / "latest"), help="where each JSON goes")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else benchmarks()
    unknown = sorted(set(names) - set(benchmarks()))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(benchmarks())}")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in names:
        began = time.perf_counter()
        print(f"== {name}", flush=True)
        command = [sys.executable, str(HERE / f"bench_{name}.py"), "--out", str(out_dir / f"{name}.json")]
        if subprocess.run(command).returncode != 0:
            failed.append(name)
        print(f"== {name}: {'failed' if name in failed else 'done'} in {time.perf_counter() - began:.0f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
