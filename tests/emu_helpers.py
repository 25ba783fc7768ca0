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


def run_compiled(acc: Accelerator, g, vfb, cores: list[int], *, runs: int = 1,  # type: ignore[no-untyped-def]
                 between=None, seed: int = 1):
    """Run the compiled binary ``vfb`` of graph ``g`` ``runs`` times on ``cores`` of
    ``acc`` (``between(task)`` before every run but the first) on a random input; return
    what can be compared (DDR bytes, every buffer of those cores, ok, error, counters) and
    the task."""
    from vfpga.flow import _graph_input

    t = acc.create_task("c", cores, vfb.ddr_size)
    t.load(vfb)
    x = np.random.default_rng(seed).standard_normal(g.tensors[g.inputs[0]].shape)
    xin = _graph_input(g, x.astype(np.float32))
    out = None
    for r in range(runs):
        if between is not None and r:
            between(t)
        t.restart()
        t.write_tensor(g.inputs[0], xin)
        out = acc.run([t])[t.name]
    assert out is not None
    bufs = [bytes(b) for c in cores for b in acc.cores[c].buffers]
    counters = {c: (dict(k.insns), k.macs, k.load_bytes, k.save_bytes)
                for c, k in out.counters.items()}
    return (t.region.mem.tobytes(), bufs, out.ok, out.error, counters), t
