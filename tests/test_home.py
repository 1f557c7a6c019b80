"""The Home page's first screen, drawn before PyTorch has loaded: the default's card and its picture."""

import base64
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from plasticity import card as cards
from plasticity.card import BaseCard, card_of, default_card
from plasticity.runs import TrainConfig
from plasticity.views import base_label
from ui import sketch, startup

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")


@pytest.fixture
def loading(monkeypatch):
    """The moment before the background warm-up has loaded the library."""
    monkeypatch.setattr(startup, "library_loaded", lambda: False)


def open_home(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    return at.run()


def picture(at: AppTest) -> str:
    url = at.get("image")[0].proto.imgs[0].url
    return base64.b64decode(url.removeprefix("data:image/svg+xml;base64,")).decode()


def test_the_shipped_card_matches_the_shipped_checkpoint(default_base):
    assert default_card() == card_of(default_base, base_label(TrainConfig()))
    assert default_card().key == TrainConfig().key


def test_the_first_screen_imports_no_pytorch():
    code = "import sys; import plasticity.card, ui.sketch, ui.startup; print('torch' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "False"


def test_before_pytorch_has_loaded_home_shows_the_default_from_its_card(loading, monkeypatch):
    at = open_home()
    assert not at.exception
    shown = {m.label: m.value for m in at.metric}
    assert shown["Test accuracy"] == f"{default_card().acc:.1%}"
    assert shown["Parameters"] == f"{default_card().params:,}"
    assert shown["Latency (256 images)"] == "loading..."
    assert picture(at).count("<polyline") == len(default_card().norms)
    assert not at.sidebar.selectbox  # the pickers come with the library
    assert "Loading PyTorch" in at.caption[-1].value

    monkeypatch.setattr(startup, "library_loaded", lambda: True)  # the warm-up is done: the whole page
    at.run()
    assert at.selectbox(key="base").value == TrainConfig().key
    assert at.button(key="train")
    assert picture(at).count("<polyline") == len(default_card().norms)


def test_a_link_to_another_base_waits_for_the_library_rather_than_show_the_default(loading):
    at = open_home(base="train-0123456789abcdef")
    assert not at.exception
    assert at.title[0].value
    assert not at.metric and not at.get("image")


def test_an_unreadable_card_is_no_card(tmp_path, monkeypatch, loading):
    broken = tmp_path / "card.json"
    broken.write_text('{"key": "train-1", "acc": ')
    monkeypatch.setattr(cards, "DEFAULT_CARD", broken)
    assert default_card() is None
    broken.write_text('{"key": "train-1", "unknown": 1}')
    assert default_card() is None
    at = open_home()
    assert not at.exception and not at.metric


@pytest.mark.parametrize(
    ("low", "high", "ticks"),
    [
        (0, 5.02, [0, 2, 4, 6]),
        (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0, 37, [0, 10, 20, 30, 40]),
        (0, 0, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    ],
)
def test_ticks_are_round_and_cover_the_range(low, high, ticks):
    assert sketch.nice_ticks(low, high) == pytest.approx(ticks)


def test_the_picture_has_one_line_per_filter_and_a_gap_where_one_was_pruned():
    card = BaseCard(
        key="k", label="l", acc=0.5, macs=1, params=1, layer="conv1", epochs=[0, 1, 2],
        norms=[[1.0, 2.0, 3.0], [1.0, None, None], [2.0, 2.5, 2.0]],
    )  # fmt: skip
    svg = sketch.norm_lines_svg(card)
    lines = [e for e in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}polyline")]
    assert [len(line.get("points").split()) for line in lines] == [3, 1, 3]
    assert "conv1" in svg
