"""How the server gets the library ready without holding up the first page.

Importing PyTorch and the library takes about four seconds of Python on a small CPU, and while an
import runs it holds the interpreter: the server's own thread, which hands the browser the page and
the scripts each kind of element needs, waits for it. So the Home page draws its first screen without
PyTorch (from the shipped default's card, plasticity/card.py), and the library is loaded in the
background only once that screen has had time to reach the browser: `warm_up_soon`, called by every
session's run, starts it once per process, `GRACE_SECONDS` later. A page that needs the library
sooner (a shared link to /prune) imports it itself; the warm-up then finds it done.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
import time
from contextlib import asynccontextmanager

log = logging.getLogger(__name__)

GRACE_SECONDS = 0.8  # after the first script run: the browser fetches the page's element scripts meanwhile
EXIT_WAIT_SECONDS = 60.0  # how long an exiting process waits for the warm-up (it takes seconds)
LOADED = threading.Event()  # the library and the default base are loaded (or failed to: the pages say why)
_STARTED = threading.Event()
_ONCE = threading.Lock()


def warm_up() -> None:
    """What the pages need: the imports, the default base in the store, plotly's first figure, the first
    optimiser (its torch._dynamo import alone takes two seconds)."""
    import torch

    from plasticity.runs import TrainConfig, get_base
    from plasticity.store import RunStore
    from plasticity.views import norm_table
    from ui import jobs, widgets  # noqa: F401  (the pages' imports)
    from ui.charts import norms as charts

    base = get_base(TrainConfig(), RunStore())  # the default: imported into the run store once, data cached
    LOADED.set()
    # plotly builds its validators on the first figure, as the norm page's chart would
    charts.norm_lines(norm_table(base.history, next(iter(base.history.width))), {}).to_json()
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)


def warm_up_soon(delay: float = GRACE_SECONDS) -> None:
    """Start `warm_up` in the background, `delay` seconds from now; once per process."""
    with _ONCE:
        if _STARTED.is_set():
            return
        _STARTED.set()

    def later() -> None:
        time.sleep(delay)
        try:
            warm_up()
        finally:
            LOADED.set()

    thread = threading.Thread(target=_quietly, args=(later,), name="plasticity-warm-up", daemon=True)
    thread.start()
    # A process that exits while this thread is inside torch aborts ("terminate called without an active
    # exception", exit 134): let it finish first, as plasticity.jobs.stop_jobs does for job workers.
    atexit.register(thread.join, EXIT_WAIT_SECONDS)


def library_loaded() -> bool:
    return LOADED.is_set()


def _quietly(work) -> None:
    try:
        work()
    except Exception:  # the pages show any real problem; the server must run regardless
        log.exception("warming up the dashboard failed")


def route_every_link_through_the_app() -> None:
    """A shared link to a page (`/prune?ratio=55`) must run app.py's router even when it is the server's
    first request. Streamlit runs a `pages/` file on its own (its older multipage mode) until some
    session has called `st.navigation`; this app always does, so say so before any session starts."""
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False


@asynccontextmanager
async def lifespan(app):
    route_every_link_through_the_app()
    yield
    await asyncio.to_thread(stop_jobs_at_shutdown)


def stop_jobs_at_shutdown() -> None:
    """The server is shutting down (Ctrl+C, or SIGTERM from `kill` or a service manager): stop the sessions'
    jobs now, so that what they computed is marked failed rather than left `running`. uvicorn ends a
    SIGTERM'd process by raising the signal again after its shutdown, which skips the atexit handlers."""
    jobs = sys.modules.get("plasticity.jobs")  # not imported: no job ever started
    if jobs is not None:
        jobs.stop_jobs()
