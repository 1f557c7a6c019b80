"""A folder too large for memory streams from its files: forced here on a small ImageFolder tree of
mnist-5k PNGs, a streamed run and an in-memory run of the same config have the same splits, the same
normalisation, the same batches and the same accuracy."""

import pytest
import torch

from plasticity.data import batches, load_dataset
from plasticity.errors import InvalidConfigError
from plasticity.models import ModelSpec, create_model
from plasticity.train import Trainer, accuracy
from tests.test_data_files import _digits, _write_tree


@pytest.fixture(scope="module")
def digits_tree(tmp_path_factory, mnist):
    root = tmp_path_factory.mktemp("digits-tree")
    images, labels = _digits(mnist, 40)
    _write_tree(root, images, labels)
    return root


def _load(name, root, monkeypatch, stream: bool):
    with monkeypatch.context() as patch:
        patch.setenv("PLASTICITY_STREAM_ABOVE", "0" if stream else str(2**40))
        return load_dataset(name, root=root)


def _trained_accuracy(data) -> float:
    torch.manual_seed(0)
    model = create_model(ModelSpec("lenet5", 1, 10, 28))
    Trainer(model, data, lr=0.05, batch_size=32, seed=3).fit(2)
    return accuracy(model, data, data.test)


def test_a_streamed_run_equals_the_run_in_memory(digits_tree, tmp_path, monkeypatch):
    name = f"folder:{digits_tree}?augment=crop-flip"  # augmentation draws from the run's generator either way
    held = _load(name, tmp_path / "held", monkeypatch, stream=False)
    streamed = _load(name, tmp_path / "streamed", monkeypatch, stream=True)
    assert not held.train.streams and streamed.train.streams and streamed.name == held.name
    assert (streamed.mean, streamed.std, streamed.channels, streamed.image_size) == (
        held.mean,
        held.std,
        held.channels,
        held.image_size,
    )
    for a, b in zip((held.train, held.val, held.test), (streamed.train, streamed.val, streamed.test)):
        assert torch.equal(a.labels, b.labels) and torch.equal(a.images, b.images[:])
    first = [next(batches(d.train, 32, torch.Generator().manual_seed(5))) for d in (held, streamed)]
    assert torch.equal(first[0][0], first[1][0]) and torch.equal(first[0][1], first[1][1])
    # the same images in the same order give the same arithmetic; one test image of slack for kernels
    # that could sum in another order on another input buffer
    held_acc, streamed_acc = _trained_accuracy(held), _trained_accuracy(streamed)
    assert held_acc > 0.3 and abs(held_acc - streamed_acc) <= 1 / len(held.test) + 1e-9
    three = streamed.subset([0, 1, 2])  # a class subset keeps streaming, on the same images
    assert three.test.streams and torch.equal(three.test.images[:], held.subset([0, 1, 2]).test.images)


def test_the_streaming_threshold_is_a_number_of_bytes(digits_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("PLASTICITY_STREAM_ABOVE", "lots")
    with pytest.raises(InvalidConfigError, match="PLASTICITY_STREAM_ABOVE is a number of bytes"):
        load_dataset(f"folder:{digits_tree}", root=tmp_path)
