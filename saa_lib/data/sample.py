"""One record per image for every data set, and the image / mask readers all data sets share.

Image conversions (``read_image`` → ``(H, W, 3) uint8`` RGB):

- ``RGB``: as stored;
- ``L`` (grayscale): the channel repeated three times;
- ``1`` (bilevel): 0 / 255, repeated;
- ``I;16`` / ``I;16B`` / ``I;16L`` / ``I`` (16-bit grayscale): the full 0..65535 range scaled to 0..255
  (``round(v / 257)``), then repeated; ``I`` values outside 0..65535 are refused;
- ``RGBA`` / ``LA`` / ``PA``: the alpha channel is dropped (not composited onto any background);
- ``P`` (palette) and every other mode Pillow can convert (``CMYK``, ``YCbCr``, ...): Pillow's ``convert("RGB")``;
- ``F`` (floating point): refused — its value range is not defined.

EXIF orientation is not applied: masks are aligned with the stored pixels.

Masks (``read_mask`` → ``(H, W) bool``): any non-zero pixel is ``True``; JPEG masks are refused (their compression
noise would count as defect pixels). Single-channel masks (``L``, ``1``, 16-bit)
are compared with 0 directly; colour or palette masks are converted to RGB (alpha dropped) and a pixel is ``True``
when any channel is non-zero — the same as loading as ``L`` and testing ``!= 0``, except that faint pure colours
which round to 0 in ``L`` still count.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: file name endings (lower case) read as images; other files in image folders are not images and are ignored
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
#: the values ``Sample.dataset`` takes
DATASET_KINDS = ("mvtec", "visa", "ksdd2", "mtd", "folder", "synthetic")
#: ``Sample.label`` values: normal, anomalous, unlabelled (an image of a flat folder without any mask)
NORMAL, ANOMALOUS, UNLABELLED = 0, 1, -1

#: mask file formats refused: their compression noise would count as defect pixels
_LOSSY_FORMATS = ("JPEG", "MPO")
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_SINGLE_CHANNEL = ("1", "L", "F") + _SIXTEEN_BIT


class DatasetError(ValueError):
    """A data set file or folder that cannot be used; the message names it and says what to do."""


def is_image_file(path: Path) -> bool:
    """Whether ``path`` is read as an image: a known image ending and not a hidden file (``.DS_Store``, ``._x.png``)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def check_nonempty(path: Path, what: str = "file") -> None:
    """Raise :class:`DatasetError` if ``path`` is missing or has 0 bytes."""
    try:
        size = os.stat(path).st_size
    except OSError as err:
        raise DatasetError(f"{path}: cannot open the {what} ({err.strerror or err}). Check the path.") from err
    if size == 0:
        raise DatasetError(f"{path}: the {what} is empty (0 bytes). Replace it with the original file or delete it.")


def _open(path: Path, what: str):
    """Open an image file with Pillow and decode it fully, turning any failure into :class:`DatasetError`."""
    from PIL import Image, UnidentifiedImageError

    check_nonempty(path, what)
    try:
        im = Image.open(path)
        im.load()
        return im
    except Image.DecompressionBombError as err:
        raise _too_many_pixels(path, err) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as err:
        raise DatasetError(
            f"{path}: cannot read the {what} ({type(err).__name__}: {err}). The file is corrupt or not an image: "
            "replace it with a readable PNG/JPEG or remove it from the data set."
        ) from err


def _too_many_pixels(path, err) -> DatasetError:
    return DatasetError(f"{path}: {err} Downscale the image (or raise PIL.Image.MAX_IMAGE_PIXELS in Python if you "
                        "trust the file).")


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of an image file, read from its header only."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    check_nonempty(path, "image")
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Image.DecompressionBombError as err:
        raise _too_many_pixels(path, err) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DatasetError(f"{path}: cannot read the image header ({err}). Replace or remove the file.") from err
    return h, w


def to_rgb(im, path: Path | str = "<image>") -> np.ndarray:
    """A decoded Pillow image as ``(H, W, 3) uint8`` RGB, by the conversions listed in the module docstring."""
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im, dtype=np.uint8).copy()
    if mode in _SIXTEEN_BIT:
        a = np.asarray(im)
        if mode == "I" and a.size and (a.min() < 0 or a.max() > 65535):
            raise DatasetError(f"{path}: 32-bit integer image with values outside 0..65535; save it as 8- or 16-bit.")
        gray = ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif mode == "F":
        raise DatasetError(f"{path}: floating-point image (mode F) has no defined value range; save it as 8-bit.")
    elif mode in ("L", "1"):
        gray = np.asarray(im.convert("L"), dtype=np.uint8)
    else:  # RGBA, LA, PA (alpha dropped), P, CMYK, YCbCr, ...
        try:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
        except ValueError as err:
            raise DatasetError(f"{path}: image mode {mode} cannot be converted to RGB ({err}); save it as RGB.") \
                from err
    return np.repeat(gray[:, :, None], 3, axis=2)


def mask_from_image(im) -> np.ndarray:
    """A decoded Pillow mask image as ``(H, W) bool``: any non-zero pixel (any channel, alpha ignored) is ``True``."""
    if im.mode in _SINGLE_CHANNEL:
        return np.asarray(im) != 0
    if im.mode == "LA":
        return np.asarray(im)[:, :, 0] != 0
    return np.asarray(im.convert("RGB")).any(axis=2)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as ``(H, W, 3) uint8`` RGB; any failure raises :class:`DatasetError` naming the file."""
    path = Path(path)
    with _open(path, "image") as im:
        return to_rgb(im, path)


def read_mask(path: str | os.PathLike, shape: tuple[int, int] | None = None,
              image_path: str | os.PathLike | None = None) -> np.ndarray:
    """Read a mask file as ``(H, W) bool``; if ``shape`` ``(H, W)`` is given the mask must have it."""
    path = Path(path)
    with _open(path, "mask") as im:
        if im.format in _LOSSY_FORMATS:
            raise DatasetError(f"{path}: a {im.format} mask; lossy compression turns background pixels near a defect "
                               "into defect pixels (any non-zero pixel counts). Save masks losslessly, as PNG "
                               "(0 normal, non-zero defect).")
        mask = mask_from_image(im)
    if shape is not None and mask.shape != tuple(shape):
        of = f" of {image_path}" if image_path else ""
        raise DatasetError(
            f"{path}: the mask is {mask.shape[1]}x{mask.shape[0]} (WxH) but the image{of} is {shape[1]}x{shape[0]}. "
            "A mask must have its image's size: fix the pairing, or resize the mask with nearest-neighbour "
            "interpolation."
        )
    return mask


@dataclass(frozen=True)
class Sample:
    """One image of a data set.

    ``label``: 0 normal, 1 anomalous, -1 unlabelled (a flat folder's image without any mask; metrics skip it).
    ``mask_path`` is ``None`` for normal and unlabelled images. ``defect_type`` is ``"good"`` for normal images (the
    defect folder's name for an image of a defect folder whose mask is all zero, counted as normal) and ``"unknown"``
    for unlabelled ones.
    """

    image_path: Path
    mask_path: Path | None
    label: int
    category: str
    defect_type: str
    dataset: str

    def __post_init__(self):
        if self.label not in (NORMAL, ANOMALOUS, UNLABELLED):
            raise DatasetError(f"{self.image_path}: label must be 0, 1 or -1, got {self.label!r}")
        if self.label == ANOMALOUS and self.mask_path is None:
            raise DatasetError(f"{self.image_path}: defect image without a mask. Add its mask, or label it normal.")

    @property
    def key(self) -> str:
        """``"<category>/<defect_type>/<file name>"``: unique within one split of one data set."""
        return f"{self.category}/{self.defect_type}/{self.image_path.name}"

    def load_image(self) -> np.ndarray:
        """The image, ``(H, W, 3) uint8`` RGB."""
        return read_image(self.image_path)

    def load_mask(self) -> np.ndarray:
        """The defect mask, ``(H, W) bool``; all ``False`` for normal and unlabelled images.

        Raises :class:`DatasetError` if the mask's size differs from the image's.
        """
        shape = image_size(self.image_path)
        if self.mask_path is None:
            return np.zeros(shape, dtype=bool)
        return read_mask(self.mask_path, shape=shape, image_path=self.image_path)
