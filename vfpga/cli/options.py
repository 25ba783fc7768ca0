"""Options shared by several commands, declared once: the calibration of an fp32 model
(``compile``, ``check``, ``import``, ``quantize``: ``--calib-dir``, ``--calib-random``,
``--seed``, ``--calib-method``, and the preprocessing of images ``--mean``, ``--std``,
``--layout``) and the compile target (``--hw``, ``--cores``: the ``hw`` and ``cores``
options of the ``dnn-tile`` / ``ifp-select`` passes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from vfpga.errors import VfpgaError
from vfpga.frontend.pipeline import DEFAULT_CALIB_RANDOM
from vfpga.hw.config import DEFAULT_HW
from vfpga.quant.inputs import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LAYOUTS,
    ImagePrep,
    parse_channel_values,
)
from vfpga.quant.quantize import CALIB_METHODS, DEFAULT_CALIB_METHOD

F = TypeVar("F", bound=Callable[..., Any])

_CALIB = [
    click.option("--calib-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="Quantize an fp32 model by calibrating on the .png/.jpg/.jpeg/.bmp "
                      "images of this folder (for an int64 token-id input: its .npy id "
                      "arrays)."),
    click.option("--calib-random", type=click.IntRange(min=1), default=None, metavar="N",
                 help="Quantize an fp32 model by calibrating on N seeded random-normal "
                      f"inputs (the default, N = {DEFAULT_CALIB_RANDOM}; valid random ids "
                      "for an int64 token-id input)."),
    click.option("--seed", type=int, default=0, show_default=True,
                 help="Seed of the random calibration inputs."),
    click.option("--calib-method", "calib_method", type=click.Choice(list(CALIB_METHODS)),
                 default=DEFAULT_CALIB_METHOD, show_default=True,
                 help="onnxruntime's calibrator of activation ranges: minmax (observed "
                      "min and max), entropy (KL-optimal clipping), percentile (99.999th "
                      "percentile)."),
    click.option("--mean", "mean", metavar="M[,M,M]", default=None,
                 help="Per-channel mean subtracted from images scaled to [0, 1] "
                      f"(default ImageNet's {','.join(map(str, IMAGENET_MEAN))})."),
    click.option("--std", "std", metavar="S[,S,S]", default=None,
                 help="Per-channel standard deviation images are divided by "
                      f"(default ImageNet's {','.join(map(str, IMAGENET_STD))})."),
    click.option("--layout", type=click.Choice(list(LAYOUTS)), default=LAYOUTS[0],
                 show_default=True,
                 help="Layout of the model input that images become (NCHW or NHWC)."),
]

_INPUT_SHAPE = click.option(
    "--input-shape", "input_shape", multiple=True, metavar="NAME=1x3x640x640",
    help="Fix the dimensions of graph input NAME (dynamic ones included).")

_TARGET = [
    click.option("--hw", "hw_name", default=DEFAULT_HW, show_default=True,
                 help="Hardware preset or configuration JSON (pass option dnn-tile{hw=...})."),
    click.option("--cores", default=1, show_default=True, type=int,
                 help="Logical cores to compile for (pass option ifp-select{cores=...}; "
                      "re-target later with vfpga realloc)."),
]


def _apply(options: list[Any], f: F) -> F:
    for opt in reversed(options):
        f = opt(f)
    return f


def calib_options(f: F) -> F:
    """``--calib-dir``, ``--calib-random``, ``--seed``, ``--calib-method``, ``--mean``,
    ``--std``, ``--layout`` (see :func:`calibration`)."""
    return _apply(_CALIB, f)


def input_shape_option(f: F) -> F:
    """``--input-shape NAME=1x3x640x640`` (repeatable; see
    :func:`vfpga.frontend.model_checks.parse_input_shapes`)."""
    return _apply([_INPUT_SHAPE], f)


def target_options(f: F) -> F:
    """``--hw`` and ``--cores``."""
    return _apply(_TARGET, f)


@dataclass(frozen=True)
class Calibration:
    """How an fp32 model is calibrated: the keyword arguments of
    :func:`vfpga.frontend.pipeline.load_model` and a description for the user;
    ``image_prep`` also preprocesses ``vfpga check --inputs`` images."""

    calib: str
    num_random: int
    calib_dir: Path | None
    seed: int
    calib_method: str = DEFAULT_CALIB_METHOD
    image_prep: ImagePrep = field(default_factory=ImagePrep)

    def kwargs(self) -> dict[str, Any]:
        return {"calib": self.calib, "num_random": self.num_random,
                "calib_dir": self.calib_dir, "seed": self.seed,
                "calib_method": self.calib_method, "image_prep": self.image_prep}

    def describe(self, ids: bool = False) -> str:
        """The calibration in words; ``ids``: for a model whose input is int64 token ids
        (``vfpga.quant.index_inputs``: random ids, or ``.npy`` id arrays)."""
        if ids:
            what = (f"the .npy id arrays in {self.calib_dir}" if self.calib_dir is not None
                    else f"{self.num_random} random int64 id inputs, uniform over the rows of "
                         f"the table they index (seed {self.seed})")
            return f"{what}, {CALIB_METHODS[self.calib_method]} ranges"
        what = (f"the images in {self.calib_dir} ({self.image_prep.describe()})"
                if self.calib_dir is not None
                else f"{self.num_random} random normal inputs (seed {self.seed})")
        return f"{what}, {CALIB_METHODS[self.calib_method]} ranges"


def calibration(calib_dir: Path | None, calib_random: int | None, seed: int,
                calib_method: str = DEFAULT_CALIB_METHOD, mean: str | None = None,
                std: str | None = None, layout: str = LAYOUTS[0], *,
                other_images: str | None = None) -> Calibration:
    """The calibration the options ask for; both a folder and a count is an error, and so
    is a folder that does not exist, a malformed ``--mean``/``--std``, and ``--mean``,
    ``--std`` or a non-default ``--layout`` without images to apply them to (``--calib-dir``,
    or the option named by ``other_images``, e.g. ``--inputs``, when it is given)."""
    if calib_dir is not None and calib_random is not None:
        raise VfpgaError("give either --calib-dir or --calib-random, not both")
    if calib_dir is not None and not calib_dir.is_dir():
        raise VfpgaError(f"{calib_dir}: calibration directory does not exist")
    prep = ImagePrep(
        IMAGENET_MEAN if mean is None else parse_channel_values(mean, "--mean"),
        IMAGENET_STD if std is None else parse_channel_values(std, "--std"), layout)
    if calib_dir is None and other_images is None and (
            mean is not None or std is not None or layout != LAYOUTS[0]):
        raise VfpgaError("--mean, --std and --layout preprocess images: give --calib-dir"
                         " (or, with vfpga check, --inputs), or drop them")
    if calib_dir is not None:
        return Calibration("dir", DEFAULT_CALIB_RANDOM, calib_dir, seed, calib_method, prep)
    return Calibration("random", calib_random or DEFAULT_CALIB_RANDOM, None, seed,
                       calib_method, prep)
