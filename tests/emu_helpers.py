"""Test helpers: turn the hand-built sample programs into in-memory program images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vfpga.emulator import Accelerator
from vfpga.examples.conv_samples import DDR_SIZE, W_OFF, Ifp, SampleProgram
from vfpga.isa.codec import encode_one


@dataclass
class TensorInfo:
    name: str
    role: str
    shape: tuple[int, ...]
    ddr_offset: int
    scale: float
    zero_point: int
    dtype: str = "int8"
    layout: str = "nhwc"

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class Image:
    text: bytes
    data: bytes
    data_offset: int
    ddr_size: int
    tensors: list[TensorInfo]


def encode_body(s: SampleProgram) -> bytes:
    out = bytearray()
    for item in s.body:
        if isinstance(item, Ifp):
            for ins in item.insns:
                out += encode_one(ins.op, core=item.core, layer=item.layer, **ins.fields)
        else:
            out += encode_one(item.op, **item.fields)
    return bytes(out)


def image_of(s: SampleProgram) -> Image:
    return Image(
        encode_body(s), s.data, W_OFF, DDR_SIZE, [TensorInfo(**t) for t in s.tensors]  # type: ignore[arg-type]
    )


def run_image(acc: Accelerator, name: str, img: Image, cores: list[int], x: np.ndarray):
    t = acc.create_task(name, cores, DDR_SIZE)
    t.load(img)
    t.write_tensor("input", x)
    return t
