"""Shared fixtures: every test session gets its own run store; data sets are cached as usual."""

import os
import pickle

import pytest

from plasticity.runs import TrainConfig, dataset_on, get_base
from plasticity.store import RunStore


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory):
    """Point $PLASTICITY_HOME at a fresh folder, so no test reads or writes the user's runs."""
    home = tmp_path_factory.mktemp("plasticity-home")
    previous = os.environ.get("PLASTICITY_HOME")
    os.environ["PLASTICITY_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("PLASTICITY_HOME", None)
    else:
        os.environ["PLASTICITY_HOME"] = previous


@pytest.fixture(scope="session")
def mnist():
    return dataset_on("mnist-5k", "cpu")


@pytest.fixture(scope="session")
def default_base(isolated_home):
    """The shipped LeNet-5 on mnist-5k (no training): the dashboard's default."""
    return get_base(TrainConfig(), RunStore(isolated_home))


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "home")


@pytest.fixture(scope="session", autouse=True)
def library_loaded():
    """As on a server a moment after its first page: the library is loaded, so Home shows its whole page
    (its first screen, before that, has its own tests)."""
    from ui import startup

    startup.LOADED.set()


class _Touch:
    """Unpickling it creates a file: the witness that a pickle's code was run."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def hostile_pickle(tmp_path):
    """Pickled bytes that create a file when they are unpickled, and that file's path."""
    witness = tmp_path / "unpickled"
    return pickle.dumps(_Touch(str(witness))), witness
