"""One run lifecycle for every run kind: its key, reuse, start, failure, and the result stored with its files.

A run's whole configuration is one frozen dataclass (a `RunConfig`); the hash of its dict is the run's
key in the store, so a run already done is never redone. `run_once` is the lifecycle: a done run is
returned as stored; otherwise the run is claimed (`RunStore.start`: a run another process computes is
waited for and its result returned), its body computes it and `save` stores the result (with its
checkpoint and history) in one transaction, and any failure or interruption marks it failed before it
propagates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from plasticity.checkpoint import Checkpoint, save_checkpoint
from plasticity.errors import StoreError
from plasticity.store import RunStore
from plasticity.train import Callback, FilterNormHistory

if TYPE_CHECKING:
    from plasticity.runs.base import Base


def run_key(kind: str, config: dict) -> str:
    digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    return f"{kind}-{digest}"


def describe(exc: BaseException) -> str:
    """How a failed run's error is stored: one line, its class and message."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{exc.__class__.__name__}: {exc}"


class RunConfig:
    """What every run kind's config (a frozen dataclass) has: a kind, a dict, a key, and how it runs.

    `begin` starts the run and returns it `Started`: the quick part is done (a pruned run's accuracy
    is known), `complete` does the rest. Kinds without a quick part begin lazily. A job runs any kind
    through these methods alone.
    """

    kind: ClassVar[str]

    def to_dict(self) -> dict:
        raise NotImplementedError

    @property
    def key(self) -> str:
        return run_key(self.kind, self.to_dict())

    def begin(
        self,
        store: RunStore,
        base: Base,
        on_progress: Callable[[dict], None] | None = None,
        *,
        prepared: Started | None = None,
    ) -> Started:
        return Deferred(self, store, base, on_progress)

    def execute(
        self,
        store: RunStore,
        base: Base,
        on_progress: Callable[[dict], None] | None,
        callbacks: list[Callback],
    ) -> dict:
        """The whole run (for kinds that begin lazily)."""
        raise NotImplementedError

    def progress(self, result: dict) -> float:
        """How far a partial result of this run is, from 0 to 1."""
        return 0.0

    def stage(self, result: dict) -> str:
        """What a partial result of this run is doing, in a few words."""
        return ""

    def preparable(self, base: Base) -> bool:
        """Whether the quick part is worth doing ahead of time, kept out of the store (`prepare`)."""
        return False

    def prepare(self, base: Base) -> Started:
        """The quick part ahead of time, out of the store, for `begin(..., prepared=...)` to take over."""
        raise NotImplementedError(f"{self.kind} runs have no quick part to prepare")


class Started:
    """A run whose quick part is done; `settle` does the short follow-up, `complete` the long part."""

    config: RunConfig
    result: dict

    def settle(self) -> None:
        """Short work before the long part (a pruned run's MACs); nothing by default."""

    def complete(self, callbacks: list[Callback]) -> dict:
        raise NotImplementedError


class Deferred(Started):
    """A run with no quick part: everything happens in `complete`."""

    def __init__(self, config: RunConfig, store: RunStore, base: Base, on_progress):
        self.config, self.store, self.base, self.on_progress = config, store, base, on_progress
        self.result = {}

    def complete(self, callbacks: list[Callback]) -> dict:
        return self.config.execute(self.store, self.base, self.on_progress, callbacks)


@contextmanager
def failing(config: RunConfig, store: RunStore) -> Iterator[None]:
    """Marks the run failed if the work inside raises (or is interrupted), then lets the error go on."""
    try:
        yield
    except BaseException as exc:
        try:
            store.fail(config.key, describe(exc))
        except StoreError:
            pass  # a full disk or a store gone read-only: the run's claim dies with this process, and the next
            # write to the store marks it failed; the error that stopped the run is the one to report
        raise


def start(config: RunConfig, store: RunStore) -> bool:
    """Claim the run `config` in the store: True to compute it now, False when it is done (see `RunStore.start`)."""
    return store.start(config.key, config.kind, config.to_dict())


def run_once(config: RunConfig, store: RunStore, body: Callable[[], dict]) -> dict:
    """The stored result of `config`, or `body()` computed now as a run of the store.

    The run is computed once across threads and processes: while another computes it, this call waits
    and returns the other's result. `body` ends by storing its result (`save`)."""
    if done := store.done(config.key):
        return done.result
    if not start(config, store):
        return store.get(config.key).result
    with failing(config, store):
        return body()


def save(
    config: RunConfig,
    store: RunStore,
    result: dict,
    checkpoint: Checkpoint | Path | None = None,
    history: FilterNormHistory | None = None,
) -> dict:
    """Store a finished run: its checkpoint file first (or the path of one already written, as an HBFP
    run's kept round), then the result and history in one transaction."""
    path = checkpoint if isinstance(checkpoint, Path) else None
    if isinstance(checkpoint, Checkpoint):
        path = store.checkpoint_path(config.key)
        save_checkpoint(checkpoint, path)
    store.finish(config.key, result, history, path)
    return result
