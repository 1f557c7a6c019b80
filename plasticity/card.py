"""A base model's card: what the dashboard's Home page shows of it, readable without PyTorch.

Importing PyTorch takes seconds on a small CPU. The shipped default's card is a small JSON file beside
its checkpoint in assets/, so the first page can show the default (its numbers and how its filters
grew) while PyTorch is still loading. This module imports nothing heavier than json.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_CARD = ASSETS / "lenet5-mnist-5k.json"


@dataclass(frozen=True)
class BaseCard:
    key: str  # the base's run key (TrainConfig.key)
    label: str
    acc: float  # test accuracy
    macs: int  # per image
    params: int
    layer: str  # the first conv layer, whose filters the picture shows
    epochs: list[int]  # 0 = initialisation
    norms: list[list[float | None]]  # per filter: its l1-norm at the end of each epoch (None once pruned)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> BaseCard:
        return cls(**json.loads(text))


def card_of(base, label: str) -> BaseCard:
    """The card of a loaded `experiment.Base`."""
    layer = next(iter(base.history.width))
    matrix = base.history.matrix(layer, "l1").T.tolist()  # filters x epochs
    norms = [[None if math.isnan(v) else round(v, 5) for v in row] for row in matrix]
    return BaseCard(
        key=base.config.key,
        label=label,
        acc=base.result["acc"],
        macs=int(base.result["macs"]),
        params=int(base.result["params"]),
        layer=layer,
        epochs=list(base.history.epochs()),
        norms=norms,
    )


def default_card() -> BaseCard | None:
    """The shipped default's card, or None when it is missing or unreadable (the page then waits for
    PyTorch and the checkpoint instead)."""
    try:
        return BaseCard.from_json(DEFAULT_CARD.read_text())
    except (OSError, TypeError, ValueError):
        return None
