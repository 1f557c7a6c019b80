"""Small scene data sets in their real formats, written for a test: Pascal VOC (JPEG images with XML
boxes) and a mask folder (PNG images with PNG masks). Each holds four images of one bright square."""

import numpy as np
from PIL import Image


def voc_folder(folder) -> str:
    """Four 48x48 JPEG images, each with its square's box in a Pascal VOC XML file; a `voc:` data set."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(4):
        pixels = rng.integers(0, 50, (48, 48, 3), dtype=np.uint8)
        pixels[8 + k : 28 + k, 10:30] = 230
        Image.fromarray(pixels).save(folder / f"{k}.jpg")
        box = f"<xmin>10</xmin><ymin>{8 + k}</ymin><xmax>30</xmax><ymax>{28 + k}</ymax>"
        (folder / f"{k}.xml").write_text(
            f"<annotation><filename>{k}.jpg</filename><object><name>square</name><bndbox>{box}</bndbox>"
            "</object></annotation>"
        )
    return f"voc:{folder}"


def mask_folder(folder) -> str:
    """Four 32x32 PNG images under images/, each with its square's PNG mask under masks/; a `masks:` data set."""
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for k in range(4):
        mask = np.zeros((32, 32), np.uint8)
        mask[4 + k : 20 + k, 8:24] = 1
        Image.fromarray(mask * 200).save(folder / "images" / f"{k}.png")
        Image.fromarray(mask).save(folder / "masks" / f"{k}.png")
    return f"masks:{folder}"
