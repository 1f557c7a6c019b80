"""Who computes now in this process: the quick work of a view first, long work in turns per session.

Jobs compute in `slots` turns at once, one per core, each job with one thread (more threads than cores
oversubscribe them: two OpenMP teams of two on 2 cores both ran many times slower than one after the
other). Interactive work (pruning and evaluating the runs of a new view) takes a turn from long work at
the long work's next training step; then work done ahead for a view (the runs one slider step away), in
short pieces; long work (fine-tuning, studies, training a base) waits in a queue served round robin by
session, and a job computing gives its turn up at a step once its time slice is over and another session
waits. A waiting job is told what it waits for ("2 runs ahead of yours, about 20 s").

A job here is anything with the `Turn` protocol (`plasticity.jobs.Job`); nothing here knows torch,
runs or Streamlit.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

QUANTUM_SECONDS = 1.0  # long work of one session computes this long before another session's turn
WAIT_REFRESH_SECONDS = 0.5  # a waiting job's place in the queue is recomputed this often


@dataclass
class _Holding:
    job: Turn
    kind: str  # interactive, soon or long (only long work gives its turn up)
    since: float  # when it took its turn, or last accounted for it


class Turn(Protocol):
    """What the scheduler needs of a job."""

    session: str  # jobs of one session run in the order they came; sessions take turns
    runs_left: int  # how many runs it still has to compute (for the waiting line)

    def waiting(self, text: str | None) -> None:
        """Show (or, with None, clear) what the job waits for."""


class Scheduler:
    def __init__(self, quantum: float = QUANTUM_SECONDS, slots: int = 1):
        self.quantum = quantum
        self.slots = slots  # turns at once: the jobs computing side by side, one thread each
        self._changed = threading.Condition()
        self._holders: dict[int, _Holding] = {}  # by id(job)
        # Short work waiting for the turn, by kind: interactive (a view's first numbers), then soon (work
        # done ahead: the slider's next steps).
        self._waiting = {"interactive": 0, "soon": 0}
        self._queue: OrderedDict[str, deque[Turn]] = OrderedDict()  # session -> its waiting long work, in turn order
        self._held: dict[int, float] = {}  # seconds of compute per job (by id) since its last finished run
        self._run_seconds: deque[float] = deque(maxlen=20)  # compute seconds of the last finished runs

    @contextmanager
    def interactive(self, job: Turn, check: Callable[[], None] = lambda: None) -> Iterator[None]:
        """Compute now: long work gives the turn up at its next step; other interactive work goes first.
        `check` raises when the job should stop waiting (it was stopped, or its session left)."""
        with self._short_turn(job, check, "interactive", self._free):
            yield

    @contextmanager
    def soon(self, job: Turn, check: Callable[[], None]) -> Iterator[None]:
        """Compute a short piece of work done ahead for a view (the runs one slider step away): after
        interactive work, before long work, which gives the turn up to it at its next step."""
        with self._short_turn(job, check, "soon", lambda: self._free() and not self._waiting["interactive"]):
            yield

    @contextmanager
    def _short_turn(self, job: Turn, check: Callable[[], None], kind: str, free: Callable[[], bool]) -> Iterator[None]:
        """Wait, counted as `kind` (which long work gives its turn up to), until `free()`; then hold the turn."""
        with self._changed:
            self._waiting[kind] += 1
            try:
                while not self._changed.wait_for(free, WAIT_REFRESH_SECONDS):
                    check()
            finally:
                self._waiting[kind] -= 1
            self._take(job, kind)
        try:
            yield
        finally:
            self._release(job)

    @contextmanager
    def long(self, job: Turn, check: Callable[[], None]) -> Iterator[None]:
        """Compute in this session's turn. `check` raises when the job should stop waiting (it was stopped)."""
        self._wait_turn(job, check, first=False)
        try:
            yield
        finally:
            self._release(job)

    def pause(self, job: Turn, check: Callable[[], None]) -> None:
        """Called by long work between steps: give the turn up if interactive work or another session waits."""
        with self._changed:
            holding = self._holders.get(id(job))
            if holding is None or holding.kind != "long":
                return  # not computing long work in a turn (interactive work, the CLI, a test calling the work)
            sliced = time.monotonic() - holding.since > self.quantum
            short_work_needs_a_turn = sum(self._waiting.values()) > self.slots - len(self._holders)
            if not (short_work_needs_a_turn or (sliced and self._other_sessions_wait(job))):
                return
            self._give_up(job)
        self._wait_turn(job, check, first=True)

    def finished_run(self, job: Turn) -> None:
        """One of `job`'s runs is done: its compute time so far makes the next waiting estimates."""
        with self._changed:
            self._account(job)
            self._run_seconds.append(self._held.pop(id(job), 0.0))

    def computing(self) -> list[Turn]:
        """The jobs that compute now."""
        with self._changed:
            return [holding.job for holding in self._holders.values()]

    def others_waiting(self, job: Turn) -> bool:
        """Whether any other work waits for the turn (a measurement taken now would be under load)."""
        with self._changed:
            return self._short_waits() or any(other is not job for queue in self._queue.values() for other in queue)

    def _wait_turn(self, job: Turn, check: Callable[[], None], first: bool) -> None:
        with self._changed:
            queue = self._queue.setdefault(job.session, deque())
            if first:
                queue.appendleft(job)  # resumes before its session's later work
            else:
                queue.append(job)
            try:
                while not (self._free() and not self._short_waits() and self._next() is job):
                    check()
                    job.waiting(self._describe_wait(job))
                    self._changed.wait(WAIT_REFRESH_SECONDS)
            finally:
                queue.remove(job)
                if not queue:
                    del self._queue[job.session]
            if job.session in self._queue:
                self._queue.move_to_end(job.session)  # the other sessions come next
            self._take(job, "long")
        job.waiting(None)

    def _free(self) -> bool:
        return len(self._holders) < self.slots

    def _short_waits(self) -> bool:
        return any(self._waiting.values())

    def _next(self) -> Turn | None:
        return next((queue[0] for queue in self._queue.values() if queue), None)

    def _other_sessions_wait(self, job: Turn) -> bool:
        return any(session != job.session and queue for session, queue in self._queue.items())

    def _take(self, job: Turn, kind: str) -> None:
        self._holders[id(job)] = _Holding(job, kind, time.monotonic())

    def _account(self, job: Turn) -> None:
        if holding := self._holders.get(id(job)):
            now = time.monotonic()
            self._held[id(job)] = self._held.get(id(job), 0.0) + now - holding.since
            holding.since = now

    def _give_up(self, job: Turn) -> None:
        self._account(job)
        del self._holders[id(job)]
        self._changed.notify_all()

    def _release(self, job: Turn) -> None:
        with self._changed:
            if id(job) in self._holders:
                self._give_up(job)

    def _describe_wait(self, job: Turn) -> str:
        """How many runs compute before `job` is done, and about how long that takes (round robin: another
        session's job costs at most as many runs as this one has left before this one ends)."""
        mine = max(1, job.runs_left)
        ahead, others = 0, []
        for holding in self._holders.values():
            if holding.job is job:
                continue
            if holding.job.session == job.session:
                ahead += max(1, holding.job.runs_left)  # this session's earlier work ends first
            else:
                others.append(holding.job)
        for session, queue in self._queue.items():
            if session == job.session:
                ahead += sum(max(1, other.runs_left) for other in list(queue)[: queue.index(job)])
            else:
                others.extend(queue)
        ahead += sum(min(max(1, other.runs_left), mine) for other in others)
        text = f"{ahead} run{'s' if ahead != 1 else ''} ahead of yours"
        if self._run_seconds:
            per_run = sum(self._run_seconds) / len(self._run_seconds)
            text += f", about {max(1, round(ahead * per_run / self.slots))} s"
        return text


SCHEDULER = Scheduler()
