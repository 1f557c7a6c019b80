"""Train the dashboard's embedded default and write it to assets/: `python scripts/make_default_asset.py`.

LeNet-5 on mnist-5k with the default TrainConfig, on the CPU, with one torch thread and deterministic
algorithms pinned here (`pinned`): how a thread team splits a sum changes its rounding, and 12 epochs
turn that into another model (test accuracy 0.9707 at 4 threads, where the shipped file has 0.9693).
Pinned, the file is the same whatever the caller's thread settings on a given CPU (tests/test_asset.py
checks that on one epoch); another CPU family may still round differently. The checkpoint carries the
filter-norm history, so the app needs no training. Beside it goes the default's card (plasticity/card.py),
which the Home page shows before PyTorch has loaded; `--card-only` writes just the card, from the
checkpoint already in assets/.
"""

import argparse
import shutil
import sys
import tempfile

import torch

from plasticity.card import ASSETS, DEFAULT_CARD, card_of
from plasticity.runs import TrainConfig, get_base, train_base
from plasticity.store import RunStore
from plasticity.views import base_label

THREADS = 1


def pinned() -> None:
    """What makes training here repeat bit for bit, whatever OMP_NUM_THREADS or torch's default says."""
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--card-only", action="store_true", help="write only the card, from the shipped checkpoint")
    args = parser.parse_args()
    pinned()
    config = TrainConfig()
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(tmp)
        if args.card_only:
            base = get_base(config, store, "cpu")
        else:
            base = train_base(config, store, "cpu", progress=True)
            target = ASSETS / f"{config.model}-{config.dataset}.pt"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(store.checkpoint_path(config.key), target)
            print(f"wrote {target} ({target.stat().st_size / 1e6:.2f} MB): test accuracy {base.result['acc']:.4f}")
    DEFAULT_CARD.write_text(card_of(base, base_label(config)).to_json())
    print(f"wrote {DEFAULT_CARD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
