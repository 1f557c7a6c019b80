"""Job control for every page: this session's job for the runs on screen, its Run/Stop buttons, its progress.

A page keeps each of its jobs in the session state under a name, as `(keys, job)`: the keys of the runs
the job was started for. When the page's settings change, its runs' keys change, and the old job is
no longer the page's (a page that follows the user, like Prune & recover, stops it: `replace`).
Jobs are started with `start`, which ties them to this browser session: its jobs take turns with other
sessions' (`plasticity.scheduler`) and stop when the session leaves (the tab is closed).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable

import pandas as pd
import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from plasticity.errors import PlasticityError
from plasticity.executors import RayExecutor
from plasticity.jobs import (
    LOCAL,
    ClusterExecutor,
    Executor,
    Job,
    JobState,
    Work,
    running_jobs,
    runs_work,
    start_job,
    study_work,
)
from plasticity.runs import Base, RunConfig
from plasticity.store import RunStore
from plasticity.studies.core import Study
from ui import limits
from ui.plain import plain

REFRESH_SECONDS = 0.5  # a running job's view is redrawn this often while a few jobs run in the server...
FULL_RATE_JOBS = 4  # ...up to this many; with more, the views share that rate
MAX_REFRESH_SECONDS = 3.0
RAY_ADDRESS = "PLASTICITY_RAY_ADDRESS"  # the host's: local, auto or ray://HOST:10001


def long_work() -> Executor:
    """Where a page's long work (a study's missing runs) is computed: on Ray when the host set
    `PLASTICITY_RAY_ADDRESS` (local: Ray on this machine's cores; auto or ray://HOST:10001: a cluster),
    else in this process. A view's interactive work (the slider's) always stays here."""
    address = os.environ.get(RAY_ADDRESS, "").strip()
    if not address:
        return LOCAL
    try:
        return ClusterExecutor(RayExecutor(None if address == "local" else address))
    except PlasticityError as exc:
        st.error(f"The server's {RAY_ADDRESS} is set, but: {exc}")
        st.stop()


def start(label: str, work: Work) -> Job:
    """Start `work` as a job of this browser session."""
    session = st.session_state.setdefault("job_session", uuid.uuid4().hex)  # whose turn it is
    context = get_script_run_ctx()
    alive = None
    if context is not None and Runtime.exists():  # an AppTest has no server runtime
        runtime, session_id = Runtime.instance(), context.session_id
        alive = lambda: runtime.is_active_session(session_id)  # noqa: E731
    return start_job(label, work, session=session, alive=alive)


def current(name: str, wanted: tuple) -> Job | None:
    """This session's job `name`, if it was started for exactly the runs `wanted`."""
    keys, job = st.session_state.get(name, ((), None))
    return job if keys == wanted else None


def keep(name: str, wanted: tuple, job: Job | None) -> Job | None:
    st.session_state[name] = (wanted, job)
    return job


def replace(name: str, wanted: tuple, start: Callable[[], Job | None]) -> Job | None:
    """The job `name` for `wanted`: kept while the runs on screen stay the same; otherwise the old one is
    stopped (nobody looks at it) and `start()` gives the new one (None when nothing needs to run)."""
    keys, job = st.session_state.get(name, ((), None))
    if keys == wanted:
        return job
    if job is not None:
        job.cancel()
    return keep(name, wanted, start())


def follow(job: Job | None, render: Callable[[JobState | None], None]) -> None:
    """Render `job`'s state now and, while it runs, again every fraction of a second (only this part
    of the page); when the job ends the whole page reruns once so everything shows the final result."""
    running = job is not None and job.snapshot().running

    def view() -> None:
        state = job.snapshot() if job is not None else None
        if state is not None and state.running and state.waiting:
            show_waiting(job, state.waiting)
        render(state)
        if running and state is not None and state.done:
            st.rerun()

    st.fragment(view, run_every=refresh_seconds() if running else None)()


def refresh_seconds() -> float:
    """How often a live view is redrawn. With a room of students, every view redrawn twice a second took most
    of the server's CPU (py-spy, ten students and two comparisons) and a student's slider waited behind the
    redraws; so with more than a few running jobs, all views together redraw about as often as four."""
    return min(MAX_REFRESH_SECONDS, REFRESH_SECONDS * max(1.0, len(running_jobs()) / FULL_RATE_JOBS))


def show_waiting(job: Job, waiting: str) -> None:
    """What the job waits for, and a button to give up its place."""
    text_col, cancel_col = st.columns([5, 1])
    text_col.info(f"Waiting for the cores: {waiting}.", icon=":material/hourglass_top:")
    if cancel_col.button("Cancel", key=f"cancel-{id(job)}"):
        job.cancel()


def follow_runs(
    name: str, configs: dict[str, RunConfig], store: RunStore, device: str, base: Base, label: str
) -> tuple[dict[str, dict], Job | None, bool]:
    """The named runs a page shows as soon as its settings are chosen: their stored results, the job that
    computes the others (started when the settings changed, the previous view's job stopped), and
    whether that job was started by this rerun."""
    finished = {name: run.result for name, config in configs.items() if (run := store.done(config.key))}
    wanted = tuple(config.key for config in configs.values())
    fresh = st.session_state.get(name, ((), None))[0] != wanted

    def start_missing() -> Job | None:
        if len(finished) == len(configs):
            return None
        return start(label, runs_work(configs, store, device, base))

    return finished, replace(name, wanted, start_missing), fresh


def retry_button(name: str) -> None:
    """After a failure or a stop: a button that starts the page's runs again."""
    if st.button("Try again", key="retry"):
        st.session_state.pop(name, None)
        st.rerun()


def running(job: Job | None) -> bool:
    return job is not None and job.snapshot().running


def run_and_stop(
    name: str,
    wanted: tuple,
    start: Callable[[], Job],
    *,
    label: str,
    run_key: str | None = None,
    stop_key: str | None = None,
) -> Job | None:
    """The Run button (`label`; disabled when it reads "Every ... is done" or the job runs) and the Stop
    button; a job started here is kept under `name` for `wanted`."""
    job = current(name, wanted)
    run_col, stop_col, _ = st.columns([2, 1, 4])
    nothing_to_do = label.startswith("Every ")
    if run_col.button(label, type="primary", disabled=running(job) or nothing_to_do, key=run_key or f"{name}_run"):
        job = keep(name, wanted, start())
    if stop_col.button("Stop", disabled=not running(job), key=stop_key or f"{name}_stop"):
        job.cancel()
    return job


def study_job(
    name: str,
    study: Study,
    title: str,
    store: RunStore,
    device: str,
    *,
    missing: int | None = None,
    run_key: str | None = None,
    stop_key: str | None = None,
) -> Job | None:
    """A study's job on its page: within the host's limits (else the page stops with one line), its missing
    runs started on the page's Run button (`missing`: their count, when the page has it already) and sent to
    the host's executor for long work, stopped on Stop."""
    limits.check_study(study, store)
    missing = study.missing(store) if missing is None else missing
    return run_and_stop(
        name,
        study.keys(),
        lambda: start(title, study_work(study, store, device, long_work())),
        label=missing_label(missing),
        run_key=run_key,
        stop_key=stop_key,
    )


def missing_label(missing: int) -> str:
    return f"Run the {missing} missing run{'s' if missing != 1 else ''}" if missing else "Every run is done"


def show_progress(state: JobState | None, default: str = "starting") -> bool:
    """The progress bar of a running job, then its error or stop; True when there was one."""
    if state is not None and state.running:
        st.progress(state.progress, text=plain(f"{state.label}: {state.message or default}"))
    return show_problem(state)


def show_problem(state: JobState | None) -> bool:
    """An error or a stop, shown in the page; True when there was one."""
    if state is None:
        return False
    if state.error:
        st.error(f"{plain(state.label)} failed: {plain(state.error)}")
        return True
    if state.cancelled:
        st.warning(f"{plain(state.label)} was stopped; what finished is kept in the run store.")
        return True
    return False


def show_failures(table: pd.DataFrame) -> None:
    """One warning per distinct failure among a study's runs."""
    for status in table.loc[table["status"].str.startswith("failed"), "status"].unique():
        st.warning(f"Some runs failed ({plain(status.removeprefix('failed: '))}); running them again retries them.")
