"""Model inputs from files: images (decoded, center-cropped, resized, normalized, laid out)
and ``.npy`` arrays. One home for the preprocessing of calibration images
(``--calib-dir``) and of real inputs (``vfpga check --inputs``).

An image becomes a model input in these steps (:func:`image_input`):

1. decoded with Pillow to RGB (3-channel input) or grayscale (1-channel input), as float32
   in [0, 1] (pixel / 255);
2. center-cropped to the model's aspect ratio (H/W): the largest centred window of that
   ratio (nothing is cropped from an image that already has it);
3. resized to the model's H x W by bilinear interpolation with half-pixel centres;
4. normalized per channel: ``(x - mean[c]) / std[c]``, ``mean``/``std`` on the [0, 1]
   scale (default: ImageNet's, :data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`);
5. laid out as the model's input: ``(1, C, H, W)`` (``NCHW``) or ``(1, H, W, C)``
   (``NHWC``).

A ``.npy`` file (:func:`npy_input`) holds the model's input as it is (already
preprocessed): its shape is the input's, or the input's without the batch dimension of 1;
any real numeric dtype, converted to float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vfpga.errors import FrontendError

#: File suffixes read as images.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
#: File suffix read as a numpy array (:func:`npy_input`).
NPY_SUFFIX = ".npy"
#: ImageNet channel mean and standard deviation (RGB, on the [0, 1] scale): the default
#: normalization of images.
IMAGENET_MEAN: tuple[float, ...] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, ...] = (0.229, 0.224, 0.225)
#: Input layouts an image can be laid out in.
LAYOUTS = ("NCHW", "NHWC")


def parse_channel_values(text: str, what: str) -> tuple[float, ...]:
    """``"0.5,0.5,0.5"`` (or one value for every channel) as floats; ``what`` names the
    option in the error."""
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise FrontendError(
            f"{what} {text!r}: expected comma-separated numbers, e.g. 0.485,0.456,0.406"
        ) from None
    if not all(np.isfinite(v) for v in vals):
        raise FrontendError(f"{what} {text!r}: values must be finite")
    return vals


@dataclass(frozen=True)
class ImagePrep:
    """How an image becomes a model input (see the module docstring): per-channel
    ``mean`` and ``std`` on the [0, 1] scale (one value: every channel) and the input
    ``layout``."""

    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    layout: str = "NCHW"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise FrontendError(f"layout {self.layout!r}: use one of {', '.join(LAYOUTS)}")
        if not self.mean or not self.std:
            raise FrontendError("mean and std need at least one value")
        if any(not s > 0 for s in self.std):
            raise FrontendError(
                f"--std {','.join(f'{v:g}' for v in self.std)}: every value must be > 0"
            )

    def describe(self) -> str:
        """``mean 0.485,0.456,0.406 std 0.229,0.224,0.225`` (plus the layout if NHWC)."""
        text = (
            f"mean {','.join(f'{v:g}' for v in self.mean)} "
            f"std {','.join(f'{v:g}' for v in self.std)}"
        )
        return text if self.layout == "NCHW" else f"{text}, {self.layout}"

    def geometry(self, shape: Sequence[int]) -> tuple[int, int, int]:
        """``(C, H, W)`` of a model input ``shape`` in this layout; a shape that is not an
        image of 1 or 3 channels with batch 1, or a mean/std of the wrong length, raises."""
        shape = tuple(shape)
        if len(shape) == 4 and shape[0] == 1:
            c, h, w = shape[1:] if self.layout == "NCHW" else (shape[3], shape[1], shape[2])
            if c in (1, 3):
                for name, vals in (("mean", self.mean), ("std", self.std)):
                    if len(vals) not in (1, c):
                        raise FrontendError(
                            f"--{name} has {len(vals)} values; the model's input has {c} "
                            f"channel(s): give {c} value(s) or one for all"
                        )
                return c, h, w
        other = LAYOUTS[1 - LAYOUTS.index(self.layout)]
        want = (
            "(1, 3, H, W) or (1, 1, H, W)"
            if self.layout == "NCHW"
            else "(1, H, W, 3) or (1, H, W, 1)"
        )
        raise FrontendError(
            f"images need a model input of shape {want} (layout "
            f"{self.layout}); this model's input has shape {shape} (give "
            f"--layout {other} if the input is {other}, or .npy inputs)"
        )


def read_image(path: Path, channels: int = 3) -> np.ndarray:
    """Decode an image file to float32 ``(H, W, channels)`` in [0, 1] (RGB, or grayscale
    for one channel); an unreadable file raises :class:`FrontendError` naming it."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB" if channels == 3 else "L"), dtype=np.float32)
    except Exception as exc:  # PIL raises UnidentifiedImageError, OSError, ...
        raise FrontendError(
            f"{path}: cannot read image ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    arr = arr / 255.0
    return arr if arr.ndim == 3 else arr[:, :, None]


def resize_bilinear(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of ``(H, W, C)`` to ``(h, w, C)`` with half-pixel centres."""
    ih, iw = img.shape[:2]

    def coords(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = (np.arange(n_out, dtype=np.float64) + 0.5) * n_in / n_out - 0.5
        x = np.clip(x, 0, n_in - 1)
        lo = np.floor(x).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (x - lo).astype(np.float32)

    y0, y1, fy = coords(h, ih)
    x0, x1, fx = coords(w, iw)
    top = img[y0][:, x0] * (1 - fx)[None, :, None] + img[y0][:, x1] * fx[None, :, None]
    bot = img[y1][:, x0] * (1 - fx)[None, :, None] + img[y1][:, x1] * fx[None, :, None]
    return (top * (1 - fy)[:, None, None] + bot * fy[:, None, None]).astype(np.float32)


def center_crop(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """The largest centred window of ``img`` (``(H, W, C)``) with aspect ratio ``h/w``."""
    ih, iw = img.shape[:2]
    if ih * w > iw * h:  # too tall
        ch = max(1, round(iw * h / w))
        top = (ih - ch) // 2
        return img[top : top + ch]
    cw = max(1, round(ih * w / h))
    left = (iw - cw) // 2
    return img[:, left : left + cw]


def image_input(path: Path, shape: Sequence[int], prep: ImagePrep) -> np.ndarray:
    """The model input (float32, ``shape``) made from the image ``path`` by ``prep``."""
    c, h, w = prep.geometry(shape)
    img = resize_bilinear(center_crop(read_image(path, c), h, w), h, w)
    img = (img - np.asarray(prep.mean, np.float32)) / np.asarray(prep.std, np.float32)
    out = img.transpose(2, 0, 1) if prep.layout == "NCHW" else img
    return np.ascontiguousarray(out[None], dtype=np.float32)


def npy_input(path: Path, shape: Sequence[int]) -> np.ndarray:
    """The array of a ``.npy`` file as the model input of ``shape`` (float32). It must
    have that shape (or that shape without a leading batch of 1) and a real numeric dtype;
    object arrays are refused (never unpickled)."""
    shape = tuple(shape)
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # ValueError (pickled/object), OSError, EOFError, ...
        raise FrontendError(
            f"{path}: not a readable .npy array ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise FrontendError(
            f"{path}: holds {getattr(arr, 'dtype', type(arr).__name__)} "
            "values; expected a real numeric array (float32)"
        )
    if arr.shape != shape and not (shape[:1] == (1,) and arr.shape == shape[1:]):
        raise FrontendError(
            f"{path}: array of shape {arr.shape}; the model's input has shape {shape}"
        )
    out = np.ascontiguousarray(arr.reshape(shape), dtype=np.float32)
    if not np.all(np.isfinite(out)):
        raise FrontendError(f"{path}: holds NaN or infinite values")
    return out


def input_files(folder: Path, suffixes: Sequence[str], what: str, files_what: str) -> list[Path]:
    """The regular files of ``folder`` whose suffix (any case) is in ``suffixes``, sorted
    by name; a missing folder (``"<what> directory does not exist"``), or one without such
    files (``"no <files_what>"``), raises."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FrontendError(f"{folder}: {what} directory does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise FrontendError(
            f"{folder}: no {files_what} (expected files ending in {', '.join(suffixes)})"
        )
    return files


def read_inputs(
    folder: Path, shape: Sequence[int], prep: ImagePrep
) -> list[tuple[Path, np.ndarray]]:
    """Every ``.npy`` file and image of ``folder`` (sorted by name) as a model input of
    ``shape``: arrays as they are, images through ``prep``. Other files are skipped."""
    files = input_files(folder, (NPY_SUFFIX, *IMAGE_SUFFIXES), "input", "input files")
    return [
        (f, npy_input(f, shape) if f.suffix.lower() == NPY_SUFFIX else image_input(f, shape, prep))
        for f in files
    ]


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_SUFFIXES",
    "LAYOUTS",
    "NPY_SUFFIX",
    "ImagePrep",
    "center_crop",
    "image_input",
    "input_files",
    "npy_input",
    "parse_channel_values",
    "read_image",
    "read_inputs",
    "resize_bilinear",
]
