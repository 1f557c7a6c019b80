"""Home's new-base form with the user's own images and network (AppTest on the real app): the data set
is described, and what cannot be used is one plain error, never a traceback."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from ui.training import OWN_FOLDER, OWN_MODEL

APP = str(Path(__file__).resolve().parents[1] / "app.py")
FACTORY = Path(__file__).with_name("user_model.py")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        (root / name).mkdir()
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def home() -> AppTest:
    return AppTest.from_file(APP, default_timeout=120).run()


def test_own_folder_and_factory_make_a_config(photos):
    at = home()
    at.selectbox(key="dataset").set_value(OWN_FOLDER).run()
    assert at.button(key="train").disabled  # no folder named yet: nothing to train
    at.text_input(key="train_folder").input(str(photos)).run()
    at.selectbox(key="train_model").set_value(OWN_MODEL).run()
    at.text_input(key="train_factory").input(f"{FACTORY}:small_cnn").run()
    assert not at.exception and not at.error
    assert any("2 classes" in text.value and "1 x 12 x 12" in text.value for text in at.text)
    assert at.button(key="train").disabled is False


def test_what_cannot_be_used_is_one_plain_error(photos):
    at = home()
    at.selectbox(key="dataset").set_value(OWN_FOLDER).run()
    at.text_input(key="train_folder").input(f"{photos}/**not_here**").run()
    assert not at.exception
    assert at.error and at.code[0].value.startswith(f"no folder at {photos}/**not_here**")  # as typed, not bold
    assert at.button(key="train").disabled is True
    at.text_input(key="train_folder").input(str(photos)).run()
    at.selectbox(key="train_model").set_value(OWN_MODEL).run()
    at.text_input(key="train_factory").input("no/such/net.py:make").run()
    assert not at.exception and at.code[0].value.startswith("no model file at")
