"""Downloads of stored runs' networks: exported on a click, in the chosen format, checked, then offered."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from plasticity.errors import PlasticityError
from plasticity.export import FORMATS, exported_bytes, list_formats
from plasticity.store import RunStore
from ui.plain import plain

EXPORTED = "_exported_networks"  # (run key, format) -> the file's bytes, this session's


def download_buttons(runs: dict[str, str], store: RunStore, formats: Sequence[str] | None = None) -> None:
    """One download per finished run of `runs` (name -> key), in the format picked beside them (one of
    `formats`, by default every format)."""
    done = {name: key for name, key in runs.items() if (run := store.done(key)) and run.checkpoint}
    if not done:
        return
    format_col, *button_cols = st.columns(1 + len(done))
    fmt = format_col.selectbox(
        "Download the network as",
        list(formats or list_formats()),
        key="export_format",
        help="Exported on click and checked: the file's outputs on test images equal the network's. "
        "Each loads without plasticity (state-dict: torch.load, torchscript: torch.jit.load, "
        "exported-program: torch.export.load, onnx: ONNX Runtime).",
    )
    exported = st.session_state.setdefault(EXPORTED, {})
    for col, (name, key) in zip(button_cols, done.items()):
        if (key, fmt) not in exported and col.button(f"Export {name}", key=f"export-{name}"):
            try:
                with st.spinner(f"Exporting and checking {name}..."):
                    exported[(key, fmt)] = exported_bytes(store, key, fmt)
            except PlasticityError as exc:
                col.error(plain(exc))  # it may quote a path
        if (key, fmt) in exported:
            col.download_button(
                f"{name} ({fmt})",
                data=exported[(key, fmt)],
                file_name=f"{key}{FORMATS.get(fmt).suffix}",
                key=f"download-{name}",
                on_click="ignore",
                icon=":material/download:",
            )
