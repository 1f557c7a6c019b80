"""Scenes: images with object boxes and pixel masks, for detection and segmentation, with fixed splits.

A scene data set is held like a classification one: every image is a tile of one size, uint8
(N, C, H, W) in one tensor; each tile has its boxes (x1, y1, x2, y2 in pixels), their labels
(1..K, 0 is the background) and, where the set has them, a mask of class indices (H, W).

Readers for the formats users have: Pascal VOC (`read_voc`: one XML of boxes per image), COCO
(`read_coco`: one JSON of boxes, with masks as polygons or run-length encodings) and mask images
beside images (`read_mask_folder`). Large images are cut into tiles (`tile`); a box is kept in a
tile when at least half of it lies there, clipped to the tile. The splits are fixed by
`plasticity.data.SPLIT_SEED`, 80 / 5 / 15 of the tiles.

The shipped sets: `digits-canvas` (mnist-5k's digits placed on a 64x64 canvas, boxes and masks exact
by construction: the fast default for tests and the page), `deepforest-trees` (the aerial images
and tree-crown boxes the deepforest wheel ships, tiled) and `stardist-nuclei` (the fluorescence
image and nucleus mask the stardist wheel ships, tiled). The wheels are read as data folders only,
found with `importlib.util.find_spec`, never imported.
"""

from __future__ import annotations

import importlib.util
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from plasticity.data import SPLIT_SEED, data_dir, load_dataset
from plasticity.errors import DatasetUnavailableError, InvalidConfigError
from plasticity.registry import Registry

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
MIN_INSIDE = 0.5  # a box belongs to a tile when at least this share of its area lies inside
CACHE_VERSION = 1  # of the cached shipped sets: raise it when their tiles or canvases change
TILE = 128  # the tile size of user folders (smaller images: their own size) and of deepforest's images


@dataclass(frozen=True)
class Picture:
    """One image as read from its files: pixels (H, W, C) uint8, boxes, labels and an optional mask."""

    pixels: np.ndarray
    boxes: np.ndarray  # float32 (n, 4), x1 y1 x2 y2 in pixels
    labels: np.ndarray  # int64 (n,), 1..K
    mask: np.ndarray | None = None  # int64 (H, W) class indices, 0 the background


@dataclass(frozen=True)
class SceneSplit:
    images: torch.Tensor  # uint8 (N, C, H, W)
    boxes: list[torch.Tensor]  # per image, float32 (n, 4)
    labels: list[torch.Tensor]  # per image, int64 (n,)
    masks: torch.Tensor | None  # int64 (N, H, W) or None

    def __len__(self) -> int:
        return len(self.images)

    def targets(self, index: Iterable[int]) -> list[dict[str, torch.Tensor]]:
        """torchvision's detection targets for the images at `index`."""
        return [{"boxes": self.boxes[i], "labels": self.labels[i]} for i in index]


@dataclass(frozen=True)
class Scenes:
    """A scene data set with its fixed splits; `classes[k - 1]` names label k."""

    name: str
    classes: tuple[str, ...]
    train: SceneSplit
    val: SceneSplit
    test: SceneSplit
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def channels(self) -> int:
        return self.train.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.train.images.shape[2]

    @property
    def has_masks(self) -> bool:
        return self.train.masks is not None

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return (images.float() / 255.0 - mean) / std


# --- readers of the users' formats ------------------------------------------------------------


def _image_beside(folder: Path, name: str) -> Path:
    """The image `name` in `folder`, or one with the same stem and another suffix (VOC files often
    name a .tif that was converted to .png)."""
    path = folder / name
    if path.is_file():
        return path
    for suffix in IMAGE_SUFFIXES:
        if (other := path.with_suffix(suffix)).is_file():
            return other
    raise InvalidConfigError(f"no image {name!r} in {folder}")


def read_image(path: Path) -> np.ndarray:
    """(H, W, C) uint8; 16-bit images are scaled from their 1st to their 99.8th percentile."""
    from PIL import Image

    with Image.open(path) as image:
        array = np.asarray(image)
    if array.dtype != np.uint8:
        low, high = np.percentile(array, (1, 99.8))
        array = np.clip((array.astype(np.float64) - low) / max(high - low, 1e-9) * 255.0, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return array[:, :, :3]


def read_voc(folder: Path | str, class_names: dict[str, str] | None = None) -> tuple[list[Picture], list[str]]:
    """Every `*.xml` of a Pascal VOC folder with its image (beside it, or in `JPEGImages/`).

    `class_names` renames the XML's names (several to one: deepforest's Alive and Dead are trees).
    """
    folder = Path(folder)
    files = sorted(folder.glob("*.xml")) or sorted((folder / "Annotations").glob("*.xml"))
    if not files:
        raise InvalidConfigError(f"no Pascal VOC .xml files in {folder}")
    rename = class_names or {}
    parsed = []
    for xml in files:
        try:
            root = ET.parse(xml).getroot()
            objects = [
                (
                    rename.get(o.findtext("name", ""), o.findtext("name", "")),
                    *(float(o.find("bndbox").findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")),
                )
                for o in root.iter("object")
            ]
        except (ET.ParseError, AttributeError, TypeError, ValueError) as exc:
            raise InvalidConfigError(f"{xml} is not a Pascal VOC annotation ({exc})") from None
        images = folder / "JPEGImages" if (folder / "JPEGImages").is_dir() else xml.parent
        parsed.append((_image_beside(images, root.findtext("filename") or xml.stem + ".jpg"), objects))
    classes = sorted({name for _, objects in parsed for name, *_ in objects})
    pictures = []
    for path, objects in parsed:
        boxes = np.array([box for _, *box in objects], dtype=np.float32).reshape(-1, 4)
        labels = np.array([classes.index(name) + 1 for name, *_ in objects], dtype=np.int64)
        pictures.append(Picture(read_image(path), boxes, labels))
    return pictures, classes


def rle_counts(text: str) -> list[int]:
    """The run lengths of COCO's compressed RLE string (maskApi.c's rleFrString): 5 bits a character,
    a continuation bit, a sign bit on the last one, and from the third run on, a difference to the
    run two before."""
    counts, position = [], 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            char = ord(text[position]) - 48
            value |= (char & 0x1F) << (5 * shift)
            more = bool(char & 0x20)
            position, shift = position + 1, shift + 1
            if not more and char & 0x10:
                value |= -1 << (5 * shift)
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def decode_rle(counts: list[int] | str, height: int, width: int) -> np.ndarray:
    """A COCO run-length encoding -> a (height, width) bool mask; runs alternate 0s and 1s, column by column."""
    if isinstance(counts, str):
        counts = rle_counts(counts)
    if sum(counts) != height * width:
        raise InvalidConfigError(f"an RLE of {sum(counts)} pixels for a {height}x{width} image")
    values = np.repeat(np.arange(len(counts)) % 2, counts).astype(bool)
    return values.reshape(width, height).T


def polygon_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (width, height), 0)
    for polygon in polygons:
        ImageDraw.Draw(canvas).polygon([tuple(p) for p in np.reshape(polygon, (-1, 2))], fill=1)
    return np.asarray(canvas).astype(bool)


def read_coco(annotations: Path | str, images: Path | str | None = None) -> tuple[list[Picture], list[str]]:
    """A COCO JSON (images, annotations with `bbox` as x, y, width, height, categories) and its images
    (in `images`, default the JSON's folder). Masks are read where annotations have a `segmentation`
    (polygons or RLE); a later annotation paints over an earlier one."""
    annotations = Path(annotations)
    folder = Path(images) if images is not None else annotations.parent
    try:
        coco = json.loads(annotations.read_text())
        categories = sorted(coco["categories"], key=lambda c: c["id"])
        label_of = {c["id"]: k + 1 for k, c in enumerate(categories)}
        by_image: dict[int, list[dict]] = {}
        for annotation in coco["annotations"]:
            by_image.setdefault(annotation["image_id"], []).append(annotation)
        with_masks = any("segmentation" in a for a in coco["annotations"])
        pictures = [
            _coco_picture(info, by_image.get(info["id"], []), label_of, folder, with_masks) for info in coco["images"]
        ]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InvalidConfigError(
            f"{annotations} is not a COCO annotation file ({exc.__class__.__name__}: {exc})"
        ) from None
    return pictures, [c["name"] for c in categories]


def _coco_picture(info: dict, annotations: list[dict], label_of: dict, folder: Path, with_masks: bool) -> Picture:
    pixels = read_image(_image_beside(folder, info["file_name"]))
    height, width = pixels.shape[:2]
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in annotations)], dtype=np.float32)
    labels = np.array([label_of[a["category_id"]] for a in annotations], dtype=np.int64)
    mask = None
    if with_masks:
        mask = np.zeros((height, width), dtype=np.int64)
        for annotation, label in zip(annotations, labels):
            segmentation = annotation.get("segmentation")
            if isinstance(segmentation, list):
                mask[polygon_mask(segmentation, height, width)] = label
            elif isinstance(segmentation, dict):
                mask[decode_rle(segmentation["counts"], *segmentation["size"])] = label
    return Picture(pixels, boxes.reshape(-1, 4), labels, mask)


def read_mask_folder(folder: Path | str) -> tuple[list[Picture], list[str]]:
    """`images/NAME.*` with `masks/NAME.png` beside them, a mask's pixel value its class (0 the
    background). A mask folder is for segmentation: its pictures have no boxes."""
    folder = Path(folder)
    images = sorted(p for p in (folder / "images").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise InvalidConfigError(f"no images in {folder / 'images'} (expected images/ and masks/ beside each other)")
    pictures = []
    for path in images:
        mask_path = _image_beside(folder / "masks", path.stem + ".png")
        pixels, mask = read_image(path), _read_labels(mask_path)
        if mask.shape != pixels.shape[:2]:
            raise InvalidConfigError(f"{mask_path} is {mask.shape[1]}x{mask.shape[0]}; its image is not")
        pictures.append(Picture(pixels, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), mask))
    highest = max(int(p.mask.max()) for p in pictures)
    return pictures, [str(k) for k in range(1, highest + 1)]


def _read_labels(path: Path) -> np.ndarray:
    """A mask image's pixel values as they are (no rescaling: they are class or instance indices)."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image).astype(np.int64)


# --- tiles and splits ------------------------------------------------------------------------------


def tile(picture: Picture, size: int) -> list[Picture]:
    """`picture` cut into size x size tiles (the last row and column zero-padded). A box goes with a
    tile when at least `MIN_INSIDE` of its area lies in it, clipped to the tile."""
    height, width = picture.pixels.shape[:2]
    tiles = []
    for top in range(0, height, size):
        for left in range(0, width, size):
            pixels = np.zeros((size, size, picture.pixels.shape[2]), np.uint8)
            part = picture.pixels[top : top + size, left : left + size]
            pixels[: part.shape[0], : part.shape[1]] = part
            mask = None
            if picture.mask is not None:
                mask = np.zeros((size, size), np.int64)
                cut = picture.mask[top : top + size, left : left + size]
                mask[: cut.shape[0], : cut.shape[1]] = cut
            shifted = picture.boxes - np.array([left, top, left, top], np.float32)
            clipped = np.clip(shifted, 0, [min(size, width - left), min(size, height - top)] * 2)
            inside = _area(clipped) >= MIN_INSIDE * np.maximum(_area(shifted), 1e-9)
            inside &= _area(clipped) > 0
            tiles.append(Picture(pixels, clipped[inside], picture.labels[inside], mask))
    return tiles


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def split_indices(count: int, fractions: tuple[float, float, float] = (0.80, 0.05, 0.15)) -> list[np.ndarray]:
    """Train, validation and test indices of `count` pictures, fixed by `SPLIT_SEED` (at least one
    picture in each split when there are three or more)."""
    order = np.random.default_rng(SPLIT_SEED).permutation(count)
    n_val = max(1, int(round(fractions[1] * count))) if count >= 3 else 0
    n_test = max(1, int(round(fractions[2] * count))) if count >= 3 else 0
    n_train = count - n_val - n_test
    return [np.sort(order[:n_train]), np.sort(order[n_train : n_train + n_val]), np.sort(order[n_train + n_val :])]


def build_scenes(name: str, pictures: list[Picture], classes: list[str] | tuple[str, ...]) -> Scenes:
    """Pictures of one size -> a `Scenes` with its fixed splits and the training images' mean and std."""
    sizes = {p.pixels.shape for p in pictures}
    if len(sizes) != 1:
        raise InvalidConfigError(f"{name}: pictures of different sizes {sorted(sizes)}; tile them first")
    if len(pictures) < 3:
        raise InvalidConfigError(f"{name} has {len(pictures)} pictures; a train, validation and test split need 3")
    splits = [_split([pictures[i] for i in index]) for index in split_indices(len(pictures))]
    train = splits[0].images.float() / 255.0
    mean = tuple(train.mean(dim=(0, 2, 3)).tolist())
    std = tuple(train.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())
    return Scenes(name, tuple(classes), *splits, mean=mean, std=std)


def _split(pictures: list[Picture]) -> SceneSplit:
    images = torch.from_numpy(np.stack([p.pixels.transpose(2, 0, 1) for p in pictures]))
    masks = None
    if all(p.mask is not None for p in pictures):
        masks = torch.from_numpy(np.stack([p.mask for p in pictures]))
    return SceneSplit(
        images,
        [torch.from_numpy(p.boxes.astype(np.float32)) for p in pictures],
        [torch.from_numpy(p.labels.astype(np.int64)) for p in pictures],
        masks,
    )


# --- the registry: shipped sets and the users' folders ------------------------------------------------

SCENES: Registry[Callable[[str], Scenes]] = Registry("scene data set")
DETECTION, SEGMENTATION = "detection", "segmentation"
TASKS_OF: dict[str, tuple[str, ...]] = {}  # data set (or family prefix) -> the tasks it serves


def _register(name: str, *tasks: str, family: bool = False) -> Callable:
    def add(loader: Callable[[str], Scenes]) -> Callable[[str], Scenes]:
        TASKS_OF[name] = tasks
        return (SCENES.register_family if family else SCENES.register)(name)(loader)

    return add


def list_scene_datasets(task: str) -> list[str]:
    """The data sets of `task`, shipped ones first, then the folder families (`voc:<path>`, ...)."""
    named = [n for n, tasks in TASKS_OF.items() if task in tasks and not n.endswith(":")]
    return named + [f"{n}<path>" for n, tasks in TASKS_OF.items() if task in tasks and n.endswith(":")]


def load_scenes(name: str, task: str) -> Scenes:
    """The scene data set `name`, checked to serve `task`."""
    loader = SCENES.get(name)
    key = name if name in TASKS_OF else next(p for p in TASKS_OF if name.startswith(p) and p.endswith(":"))
    if task not in TASKS_OF[key]:
        raise InvalidConfigError(
            f"{name} has no {'masks' if task == SEGMENTATION else 'boxes'} for {task}; "
            f"data sets for {task}: {', '.join(list_scene_datasets(task))}"
        )
    return loader(name)


@_register("digits-canvas", DETECTION, SEGMENTATION)
def digits_canvas(name: str = "digits-canvas") -> Scenes:
    return _cached(name, lambda: _digits_canvas(name))


def _digits_canvas(name: str, size: int = 64) -> Scenes:
    """mnist-5k's 5,000 digits, one to three to a size x size canvas, placed apart: each digit is used
    once (one that finds no free place starts the next canvas), its box is the rectangle of its ink,
    its mask the pixels of at least half intensity."""
    digits = load_dataset("mnist-5k")
    parts = (digits.train, digits.val, digits.test)
    images = torch.cat([p.images[:, 0] for p in parts]).numpy()
    labels = torch.cat([p.labels for p in parts]).numpy()
    rng = np.random.default_rng(SPLIT_SEED)
    order = rng.permutation(len(labels))
    pictures, start = [], 0
    while start < len(order):
        chosen = order[start : start + int(rng.integers(1, 4))]
        picture = _canvas([images[i] for i in chosen], [labels[i] for i in chosen], size, rng)
        pictures.append(picture)
        start += len(picture.labels)  # a digit with no free place starts the next canvas
    return build_scenes(name, pictures, [str(d) for d in range(10)])


def _canvas(digits: list[np.ndarray], classes: list[int], size: int, rng: np.random.Generator) -> Picture:
    side = digits[0].shape[0]
    pixels, mask = np.zeros((size, size), np.uint8), np.zeros((size, size), np.int64)
    boxes, placed = [], []
    for digit, cls in zip(digits, classes):
        for _ in range(100):  # a free place, if there is one
            top, left = (int(v) for v in rng.integers(0, size - side + 1, 2))
            if all(abs(top - y) >= side or abs(left - x) >= side for y, x in placed):
                break
        else:
            break
        placed.append((top, left))
        pixels[top : top + side, left : left + side] = digit
        mask[top : top + side, left : left + side][digit >= 128] = cls + 1
        ys, xs = np.nonzero(digit)
        boxes.append((left + xs.min(), top + ys.min(), left + xs.max() + 1, top + ys.max() + 1, cls + 1))
    table = np.array(boxes, dtype=np.float32).reshape(-1, 5)
    return Picture(pixels[:, :, None], table[:, :4], table[:, 4].astype(np.int64), mask)


def package_data(package: str, *parts: str) -> Path:
    """A data folder inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetUnavailableError(
            f"the {package} package is not installed; its data folder is read as a data set: "
            f"pip install --no-deps {package}"
        )
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)


def _cached(name: str, build: Callable[[], Scenes]) -> Scenes:
    """A shipped set's tiles, built once and kept in `data_dir()` (decoding deepforest's large PNGs or
    placing 5,000 digits takes seconds)."""
    path = data_dir() / f"{name}-{CACHE_VERSION}.pt"
    if path.exists():
        return _scenes_from_state(torch.load(path, weights_only=True))
    scenes = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(_scenes_state(scenes), tmp)
    tmp.replace(path)
    return scenes


def _scenes_state(scenes: Scenes) -> dict:
    splits = {s: vars(getattr(scenes, s)) for s in ("train", "val", "test")}
    return {
        "name": scenes.name,
        "classes": list(scenes.classes),
        "mean": list(scenes.mean),
        "std": list(scenes.std),
        **splits,
    }


def _scenes_from_state(state: dict) -> Scenes:
    splits = [SceneSplit(**state[s]) for s in ("train", "val", "test")]
    return Scenes(state["name"], tuple(state["classes"]), *splits, mean=tuple(state["mean"]), std=tuple(state["std"]))


@_register("deepforest-trees", DETECTION)
def deepforest_trees(name: str = "deepforest-trees") -> Scenes:
    """The deepforest wheel's aerial RGB images with their tree-crown boxes (Pascal VOC), in 128-pixel
    tiles; its Alive and Dead trees are one class, tree."""

    def build() -> Scenes:
        folder = package_data("deepforest", "data")
        pictures, _ = read_voc(folder, {"Tree": "tree", "Alive": "tree", "Dead": "tree"})
        return build_scenes(name, [t for p in pictures for t in tile(p, TILE)], ["tree"])

    return _cached(name, build)


@_register("stardist-nuclei", SEGMENTATION, DETECTION)
def stardist_nuclei(name: str = "stardist-nuclei", size: int = 64) -> Scenes:
    """The stardist wheel's 512x512 fluorescence image of nuclei with its instance mask, in 64-pixel
    tiles: the mask is nucleus or background, each nucleus's rectangle a box."""
    folder = package_data("stardist", "data", "images")
    pixels, instances = read_image(folder / "img2d.tif"), _read_labels(folder / "mask2d.tif")
    boxes = [
        [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        for ys, xs in (np.nonzero(instances == k) for k in np.unique(instances[instances > 0]))
    ]
    picture = Picture(
        pixels,
        np.array(boxes, np.float32).reshape(-1, 4),
        np.ones(len(boxes), np.int64),
        (instances > 0).astype(np.int64),
    )
    return build_scenes(name, tile(picture, size), ["nucleus"])


@_register("voc:", DETECTION, family=True)
def _voc_folder(name: str) -> Scenes:
    return _tiled(name, *read_voc(_folder(name)))


@_register("coco:", DETECTION, SEGMENTATION, family=True)
def _coco_file(name: str) -> Scenes:
    return _tiled(name, *read_coco(_folder(name, "a COCO .json file")))


@_register("masks:", SEGMENTATION, family=True)
def _mask_folder(name: str) -> Scenes:
    return _tiled(name, *read_mask_folder(_folder(name)))


def _tiled(name: str, pictures: list[Picture], classes: list[str]) -> Scenes:
    """A user's pictures in tiles of `TILE` pixels, or of their largest side (rounded up to a multiple of
    8, the networks' stride) when every picture is smaller."""
    largest = max(max(p.pixels.shape[:2]) for p in pictures)
    size = min(TILE, -(-largest // 8) * 8)
    return build_scenes(name, [t for p in pictures for t in tile(p, size)], classes)


def _folder(name: str, what: str = "a folder") -> Path:
    path = Path(name.split(":", 1)[1]).expanduser()
    if not path.exists():
        raise InvalidConfigError(f"{name}: no such path; give {what} after the colon")
    return path
