"""User text in the dashboard shows as its characters, never as Markdown (ui/plain.py): here an error that
quotes a path named like a Markdown link and image, which must not become a live link nor make the browser
fetch the image; and a store that cannot be read is one line in the page, not a traceback."""

import re

from streamlit.testing.v1 import AppTest
from test_app import APP, stop_jobs  # noqa: F401 (a fixture)

from ui.plain import plain

EVIL = "[log in](https://evil.example/login) ![](https://evil.example/p.png)"


def _unescaped(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def test_plain_leaves_no_markup():
    assert _unescaped(plain(EVIL)) == EVIL and not re.search(r"(?<!\\)[\[\]()!<>`*_]", plain(EVIL))


def test_a_store_error_naming_a_markdown_path_is_one_plain_line(tmp_path, monkeypatch):
    home = tmp_path / EVIL  # its slashes make folders; the brackets, parentheses and bang stay
    (home / "runs.sqlite").mkdir(parents=True)  # a folder where the database should be
    monkeypatch.setenv("PLASTICITY_HOME", str(home))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    (error,) = [e.value for e in at.error]
    assert "is a folder, not a run store" in _unescaped(error) and str(home) in _unescaped(error)
    assert not re.search(r"(?<!\\)[\[\]()!]", error)
