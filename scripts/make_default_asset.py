"""Train the dashboard's embedded default and write it to assets/: `python scripts/make_default_asset.py`.

LeNet-5 on mnist-5k with the default TrainConfig, on the CPU (training there is deterministic, so the
file is reproducible). The checkpoint carries the filter-norm history, so the app needs no training.
"""

import shutil
import sys
import tempfile

from plasticity.experiment import ASSETS, TrainConfig, train_base
from plasticity.store import RunStore


def main() -> int:
    config = TrainConfig()
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(tmp)
        base = train_base(config, store, "cpu", progress=True)
        target = ASSETS / f"{config.model}-{config.dataset}.pt"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(store.checkpoint_path(config.key), target)
    print(f"wrote {target} ({target.stat().st_size / 1e6:.2f} MB): test accuracy {base.result['acc']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
