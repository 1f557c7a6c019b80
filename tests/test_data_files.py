"""Data sets read from a user's own files, each written here in its real format from mnist-5k digits:
an ImageFolder tree of PNGs, CIFAR python batches, SVHN .mat files, Caltech101's folder, and the full
Fashion-MNIST of Debian's package."""

import json
import os
import pickle
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from plasticity import cli
from plasticity import data as data_module
from plasticity.data import augment_batch, canonical_name, load_dataset
from plasticity.errors import DatasetUnavailableError, InvalidConfigError
from plasticity.runs import TrainConfig
from plasticity.studies.pretraining import Task


def _digits(mnist, per_class: int, classes=range(10)):
    """`per_class` mnist-5k digits of each class, as (images (N, 28, 28) uint8, labels) in class order."""
    images, labels = [], []
    for c in classes:
        chosen = mnist.train.images[mnist.train.labels == c][:per_class, 0]
        images.append(chosen.numpy())
        labels += [c] * len(chosen)
    return np.concatenate(images), np.asarray(labels)


def _write_tree(root, images, labels, names=None):
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / (names[label] if names else f"class-{label}")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.png")


def _rgb32(images):
    """28x28 grey digits -> 32x32 RGB (N, 3, 32, 32): the digit in red, its negative in blue."""
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    return np.stack([padded, padded // 2, 255 - padded], axis=1).astype(np.uint8)


@pytest.fixture(scope="module")
def tree(tmp_path_factory, mnist):
    root = tmp_path_factory.mktemp("photos")
    images, labels = _digits(mnist, 20, classes=(3, 5, 8))
    _write_tree(root, images, labels, names={3: "a-three", 5: "b-five", 8: "c-eight"})
    return root, images


def test_image_folder_reads_class_folders_with_fixed_stratified_splits(tree, tmp_path):
    root, images = tree
    data = load_dataset(f"folder:{root}", root=tmp_path)
    assert (data.num_classes, data.channels, data.image_size) == (3, 1, 28)
    assert (len(data.train), len(data.val), len(data.test)) == (48, 3, 9)
    for split, per_class in ((data.train, 16), (data.val, 1), (data.test, 3)):
        assert torch.bincount(split.labels, minlength=3).tolist() == [per_class] * 3
    read = torch.cat([data.train.images, data.val.images, data.test.images])[:, 0]
    assert {tuple(x.flatten().tolist()) for x in read} == {tuple(x.flatten().tolist()) for x in images}
    again = load_dataset(f"folder:{root}", root=tmp_path)  # from the decoded cache this time
    assert torch.equal(again.test.images, data.test.images) and torch.equal(again.train.labels, data.train.labels)


def test_a_folder_is_one_run_however_it_is_written(tree, monkeypatch):
    root, _ = tree
    monkeypatch.setenv("HOME", str(root.parent))
    tilde = f"folder:~/{root.name}"
    assert canonical_name(tilde) == f"folder:{root.resolve()}"
    assert TrainConfig(dataset=tilde).key == TrainConfig(dataset=f"folder:{root}/").key
    assert Task.parse(f"{tilde}:0-1") == Task(canonical_name(tilde), (0, 1))
    assert Task.parse(tilde).classes == ()


def test_image_folder_size_and_channels_options(tmp_path, mnist):
    images, labels = _digits(mnist, 4, classes=(0, 1))
    _write_tree(tmp_path / "mixed", images, labels)
    Image.fromarray(images[0]).resize((40, 30)).save(tmp_path / "mixed" / "class-0" / "wide.png")
    with pytest.raises(InvalidConfigError, match=r"\?size="):
        load_dataset(f"folder:{tmp_path / 'mixed'}", root=tmp_path)
    data = load_dataset(f"folder:{tmp_path / 'mixed'}?size=16,channels=3", root=tmp_path)
    assert (data.image_size, data.channels, len(data.train) + len(data.val) + len(data.test)) == (16, 3, 9)
    assert torch.equal(data.train.images[:, 0], data.train.images[:, 2])  # grey made RGB: equal channels


@pytest.mark.parametrize(
    "name, message",
    [
        ("mnist-5k?size=32", "applies to folder"),
        ("cifar10?augment=mixup", "crop-flip"),
        ("mnist-5k?colour=1", "options are"),
        ("folder:/nowhere/at/all", "no folder at /nowhere/at/all"),
    ],
)
def test_bad_names_and_folders_are_one_clear_error(name, message, tmp_path):
    with pytest.raises((InvalidConfigError, DatasetUnavailableError), match=message):
        load_dataset(name, root=tmp_path)


def test_a_folder_needs_class_folders_of_images(tmp_path):
    (tmp_path / "flat").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "flat" / "one.png")
    with pytest.raises(InvalidConfigError, match="sub-folder per class"):
        load_dataset(f"folder:{tmp_path / 'flat'}", root=tmp_path)


def _pickle_batch(path, images, labels, label_key=b"labels"):
    """A CIFAR python batch as its authors wrote it (Python 2 cPickle): bytes keys, (N, 3072) uint8 rows."""
    with open(path, "wb") as f:
        pickle.dump({b"data": images.reshape(len(images), -1), label_key: labels.tolist()}, f, protocol=2)


def test_cifar10_python_batches(tmp_path, mnist):
    images, labels = _digits(mnist, 12)
    rgb = _rgb32(images)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(5):
        _pickle_batch(folder / f"data_batch_{i + 1}", rgb[i * 20 : (i + 1) * 20], labels[i * 20 : (i + 1) * 20])
    _pickle_batch(folder / "test_batch", rgb[100:], labels[100:])
    data = load_dataset("cifar10", root=tmp_path)
    assert (data.channels, data.image_size, data.num_classes) == (3, 32, 10)
    assert (len(data.train) + len(data.val), len(data.test)) == (100, 20)
    assert torch.equal(data.test.images, torch.from_numpy(rgb[100:]))
    assert torch.equal(data.test.labels, torch.from_numpy(labels[100:]))


def test_cifar100_reads_the_fine_labels(tmp_path, mnist):
    images, labels = _digits(mnist, 6)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    _pickle_batch(folder / "train", _rgb32(images[:40]), labels[:40] * 10, b"fine_labels")
    _pickle_batch(folder / "test", _rgb32(images[40:]), labels[40:] * 10, b"fine_labels")
    data = load_dataset("cifar100", root=tmp_path)
    assert data.num_classes == 91 and torch.equal(data.test.labels, torch.from_numpy(labels[40:] * 10))


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo unpickled",))


def test_a_cifar_batch_that_names_code_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ("test_batch", *(f"data_batch_{i}" for i in range(1, 6))):
        (folder / name).write_bytes(pickle.dumps({b"data": _RunsCode()}, protocol=2))
    with pytest.raises(DatasetUnavailableError, match="not allowed"):
        load_dataset("cifar10", root=tmp_path)


def test_svhn_mat_files(tmp_path, mnist):
    from scipy.io import savemat

    images, labels = _digits(mnist, 6)
    rgb = _rgb32(images)
    svhn_labels = np.where(labels == 0, 10, labels)  # SVHN labels the digit 0 as 10
    for part, rows in (("train", slice(0, 40)), ("test", slice(40, None))):
        x = rgb[rows].transpose(2, 3, 1, 0)  # (32, 32, 3, N), as SVHN ships it
        savemat(tmp_path / f"{part}_32x32.mat", {"X": x, "y": svhn_labels[rows].reshape(-1, 1)})
    data = load_dataset("svhn", root=tmp_path)
    assert torch.equal(data.test.images, torch.from_numpy(rgb[40:]))
    assert torch.equal(data.test.labels, torch.from_numpy(labels[40:]))


def test_caltech101_leaves_out_its_background_class(tmp_path, mnist):
    images, labels = _digits(mnist, 5, classes=(0, 1, 2))
    names = {0: "BACKGROUND_Google", 1: "accordion", 2: "airplanes"}
    categories = tmp_path / "caltech101" / "101_ObjectCategories"
    _write_tree(categories, images, labels, names)
    Image.fromarray(images[5]).resize((90, 70)).convert("RGB").save(categories / "airplanes" / "big.jpg")
    data = load_dataset("caltech101", root=tmp_path)
    assert (data.num_classes, data.channels, data.image_size) == (2, 3, 64)
    assert len(data.train) + len(data.val) + len(data.test) == 11


def test_augmentation_is_a_padded_crop_and_a_flip_of_each_image(mnist):
    images = mnist.train.images[:6]
    out = augment_batch(images, torch.Generator().manual_seed(3))
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    for original, augmented in zip(padded, out):
        crops = [original[:, dy : dy + 28, dx : dx + 28] for dy in range(9) for dx in range(9)]
        assert any(torch.equal(augmented, c) or torch.equal(augmented, c.flip(2)) for c in crops)
    assert not torch.equal(out, images)


def test_augmentation_is_in_the_key_only_when_set():
    assert "?" not in TrainConfig().dataset
    assert TrainConfig(dataset="mnist-5k?augment=crop-flip").key != TrainConfig().key
    assert load_dataset("mnist-5k?augment=crop-flip").augment == "crop-flip"


def _fashion_mnist_installed() -> bool:
    if not data_module.SYSTEM_FASHION_MNIST.exists() and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update"], check=False, capture_output=True)  # a new machine has no lists
        subprocess.run(["apt-get", "install", "-y", "dataset-fashion-mnist"], check=False, capture_output=True)
    return data_module.SYSTEM_FASHION_MNIST.exists()


def test_the_full_fashion_mnist_from_debians_package(tmp_path):
    if not _fashion_mnist_installed():
        pytest.skip(f"no {data_module.SYSTEM_FASHION_MNIST}; install the Debian package `dataset-fashion-mnist`")
    data = load_dataset("fashion-mnist", root=tmp_path)  # nothing under the root: the system copy is found
    assert (len(data.train), len(data.val), len(data.test)) == (54000, 6000, 10000)
    assert torch.bincount(data.test.labels).tolist() == [1000] * 10


def test_cli_trains_on_a_folder_and_names_a_bad_option(tree, tmp_path, monkeypatch, capsys):
    root, _ = tree
    monkeypatch.setenv("PLASTICITY_DATA", str(tmp_path / "elsewhere"))  # --data-root wins; restored afterwards
    common = ["train", "--data-root", str(tmp_path / "data"), "--home", str(tmp_path / "home"), "--json"]
    assert cli.main([*common, "--dataset", f"folder:{root}", "--epochs", "1", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["dataset"] == f"folder:{root.resolve()}"
    assert any((tmp_path / "data" / "folders").iterdir())  # decoded under --data-root
    assert cli.main([*common, "--dataset", f"folder:{root}?size=0"]) == 2
    assert capsys.readouterr().err.startswith("error: size must be")
