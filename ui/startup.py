"""What the server does once, when `streamlit run app.py` starts: warm up in the background.

Importing torch, the library and the chart code, and loading the shipped default base, takes a few
seconds on a small CPU. Done in a background thread while the server starts and the browser connects,
the first page is drawn without waiting for it; a session that comes sooner simply waits on the same
imports (Python's import lock) instead of doing them twice.
"""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

log = logging.getLogger(__name__)


def warm_up() -> None:
    """What the first page needs: the imports, the default base in the store, plotly's first figure."""
    from plasticity.experiment import TrainConfig, get_base
    from plasticity.store import RunStore
    from plasticity.views import norm_table
    from ui import charts, widgets  # noqa: F401  (the pages' imports)

    base = get_base(TrainConfig(), RunStore())  # the default: imported into the run store once, data cached
    # plotly builds its validators on the first figure: the Home page's chart, drawn once here
    charts.norm_lines(norm_table(base.history, next(iter(base.history.width))), {}).to_json()


def warm_up_training() -> None:
    """The first optimiser of a process imports torch._dynamo: 2 s of Python here. Done once, in the
    background, after a first page is drawn (done at start-up, it slowed that page down by as much)."""
    global _TRAINING_WARM
    with _ONCE:
        if _TRAINING_WARM:
            return
        _TRAINING_WARM = True

    def first_optimiser() -> None:
        import torch

        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)

    threading.Thread(target=_quietly, args=(first_optimiser,), name="plasticity-warm-up-training", daemon=True).start()


_ONCE = threading.Lock()
_TRAINING_WARM = False


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
    threading.Thread(target=_quietly, args=(warm_up,), name="plasticity-warm-up", daemon=True).start()
    yield
