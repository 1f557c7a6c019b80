"""Text the app did not write, made safe for Streamlit's Markdown.

Every Streamlit element that takes a string (st.error, st.warning, st.caption, st.markdown, a progress
bar's text, a spinner) renders it as Markdown. A URL parameter, a base or file name, or an error
message that quotes one could then put a live link on the page or make the browser fetch a remote
image. `plain` escapes every Markdown and HTML character of such text, so it shows as the characters
it is.
"""

from __future__ import annotations

import re

_MARKUP = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=\"'])")


def plain(text: object, limit: int = 500) -> str:
    """`text` as literal characters in Markdown, cut to `limit` characters."""
    text = str(text)
    if len(text) > limit:
        text = text[:limit] + "..."
    return _MARKUP.sub(r"\\\1", text)
