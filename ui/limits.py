"""What each session may ask of a shared server: limits the host sets in the environment.

`PLASTICITY_MAX_EPOCHS`: the most epochs of fine-tuning or training a session may pick (every epochs
widget stops there; at least 2, a slider needs a range); `PLASTICITY_MAX_SWEEP`: the most runs one
comparison or study may plan; `PLASTICITY_ALLOW_TRAINING=0`: no new base models (Home's training form
and studies that need new bases are turned off). Unset: no limit beyond the widgets' own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import streamlit as st

from plasticity.errors import InvalidConfigError
from plasticity.store import RunStore
from plasticity.studies.core import Study
from ui.plain import plain


@dataclass(frozen=True)
class Limits:
    max_epochs: int | None = None
    max_sweep: int | None = None
    allow_training: bool = True

    @classmethod
    def from_environment(cls) -> Limits:
        allow = os.environ.get("PLASTICITY_ALLOW_TRAINING", "1").strip().lower()
        if allow not in {"0", "1", "true", "false", "yes", "no"}:
            raise InvalidConfigError(f"PLASTICITY_ALLOW_TRAINING must be 1 or 0; got {allow!r}")
        return cls(
            max_epochs=_count("PLASTICITY_MAX_EPOCHS", smallest=2),
            max_sweep=_count("PLASTICITY_MAX_SWEEP", smallest=1),
            allow_training=allow in {"1", "true", "yes"},
        )


def _count(name: str, smallest: int) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < smallest:
        raise InvalidConfigError(f"{name} must be a whole number of at least {smallest}; got {text!r}")
    return int(text)


def current() -> Limits:
    """This server's limits; a wrong setting stops the page with one line saying which."""
    try:
        return Limits.from_environment()
    except InvalidConfigError as exc:
        st.error(f"The server's limits are set wrongly: {plain(exc)}")
        st.stop()


def epochs(widest: int) -> int:
    """An epochs widget's largest value (or default): its own, or the server's limit if that is lower."""
    limit = current().max_epochs
    return widest if limit is None else min(widest, limit)


def check_study(study: Study, store: RunStore) -> None:
    """Stop the page, saying why, when the study plans more runs than this server allows a session, or
    needs new base models where training them is turned off."""
    limits = current()
    check_runs(len(study.plan()))
    if not limits.allow_training and (untrained := study.missing_bases(store)):
        st.error(f"This needs {untrained} new base model(s), and training new bases is turned off on this server.")
        st.stop()


def check_runs(planned: int) -> None:
    """Stop the page, saying why, when `planned` runs are more than this server allows a session at once."""
    limit = current().max_sweep
    if limit is not None and planned > limit:
        st.error(f"This plans {planned} runs; this server allows at most {limit} at once. Pick fewer.")
        st.stop()
