"""Hand-built sample programs: one 3x3 convolution layer (16x16x16 -> 16x16x32, ReLU),
computed on 1 core, split across 4 cores by output channel, and split across 4 cores by
width; and a two-layer demo (convolution then 2x2 max pooling, both on 4 cores).

The programs are written instruction by instruction here (no compiler involved) and saved
as assembly in ``vfpga/examples/*.s`` by ``python -m vfpga.examples.conv_samples``; the
tests check that all split variants produce the 1-core program's output bytes.

DDR map of every sample (offsets relative to the tenant base)::

    0x0000  input   int8 NHWC 1x16x16x16   (4096 bytes)
    0x1000  conv    int8 NHWC 1x16x16x32   (8192 bytes; output of the conv samples)
    0x3000  pool    int8 NHWC 1x8x8x32     (2048 bytes; output of the demo)
    0x4000  weights int8 [32][3][3][16]     (4608 bytes)
    0x5200  params  32 x (bias int32, scale float32, divisor float32) (384 bytes)

The parameter records follow ISA version 2: ``out = act(sat8(out_zp + rne(f32(f32(f32(acc)
* scale) / divisor))))`` with a per-channel float32 ``scale`` (about 2**-11) and
``divisor = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vfpga.backend.binary import Layer, Tensor, VfbFile, empty_ifps
from vfpga.hw.config import BUFFER_NAMES, DEFAULT_HW, HardwareConfig
from vfpga.isa.codec import encode_one
from vfpga.isa.effects import written_range
from vfpga.isa.float32 import requant_scale
from vfpga.isa.spec import (
    PARAM_RECORD_BYTES,
    PARAM_RECORD_DTYPE,
    Act,
    Buffer,
    Dep,
    FieldDict,
    Opcode,
    PoolMode,
)

H = W = 16
CIN, COUT, K = 16, 32, 3
IN_OFF, CONV_OFF, POOL_OFF, W_OFF = 0x0000, 0x1000, 0x3000, 0x4000
P_OFF = W_OFF + COUT * K * K * CIN
DDR_SIZE = 0x6000
IN_ZP, OUT_ZP = -3, -10
IN_SCALE, OUT_SCALE = 0.05, 0.08


@dataclass
class Insn:
    """One instruction: opcode and its fields by name (as in vfpga/isa/spec.py)."""

    op: Opcode
    fields: FieldDict


@dataclass
class Ifp:
    """An instruction frame package: a tile of a layer on one core."""

    layer: int
    core: int
    w: tuple[int, int]
    c: tuple[int, int]
    h: tuple[int, int]
    insns: list[Insn] = field(default_factory=list)


@dataclass
class SampleProgram:
    """A sample: layers (name, kind, MACs), IFPs, trailing SYNC/END per layer and core,
    the constant blob and the memory map."""

    name: str
    description: str
    layers: list[tuple[str, str, int]]
    body: list[Ifp | Insn]
    data: bytes
    tensors: list[dict[str, Any]]


def constants(seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Seeded weights int8 [COUT][K][K][CIN] and COUT parameter records of
    :data:`~vfpga.isa.spec.PARAM_RECORD_DTYPE` (bias int32, scale float32, divisor float32):
    ``scale`` is the float32 nearest to a random ``m / 2**40``, ``2**29 <= m < 2**30``."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, size=(COUT, K, K, CIN), dtype=np.int8)
    bias = rng.integers(-2000, 2000, size=COUT).astype(np.int64)
    bias -= IN_ZP * w.reshape(COUT, -1).astype(np.int64).sum(axis=1)  # fold -in_zp*sum(w)
    mult = rng.integers(1 << 29, 1 << 30, size=COUT)
    params = np.zeros(COUT, PARAM_RECORD_DTYPE)
    params["bias"] = bias
    params["scale"] = [requant_scale(int(m), 40) for m in mult]
    params["divisor"] = 1.0
    return w, params


def _data() -> bytes:
    w, params = constants()
    blob = np.zeros(DDR_SIZE - W_OFF, dtype=np.uint8)
    blob[: w.nbytes] = w.reshape(-1).view(np.uint8)
    blob[P_OFF - W_OFF : P_OFF - W_OFF + params.nbytes] = params.reshape(-1).view(np.uint8)
    return blob[: P_OFF - W_OFF + params.nbytes].tobytes()


def _tensors(with_pool: bool) -> list[dict[str, Any]]:
    t: list[dict[str, object]] = [
        dict(name="input", role="input", shape=(1, H, W, CIN), ddr_offset=IN_OFF,
             scale=IN_SCALE, zero_point=IN_ZP),
        dict(name="conv", role="activation" if with_pool else "output", shape=(1, H, W, COUT),
             ddr_offset=CONV_OFF, scale=OUT_SCALE, zero_point=OUT_ZP),
    ]
    if with_pool:
        t.append(dict(name="pool", role="output", shape=(1, H // 2, W // 2, COUT),
                      ddr_offset=POOL_OFF, scale=OUT_SCALE, zero_point=OUT_ZP))
    return t


def _conv_tile(
    layer: int, core: int, cols: tuple[int, int], chans: tuple[int, int]
) -> Ifp:
    """Output columns ``cols`` and channels ``chans`` of the conv layer on ``core``."""
    c0, c1 = chans
    x0, x1 = cols
    nc = c1 - c0
    in_lo, in_hi = max(x0 - 1, 0), min(x1 + 1, W)
    pad_l, pad_r = int(x0 == 0), int(x1 == W)
    in_w = in_hi - in_lo + pad_l + pad_r
    ifp = Ifp(layer, core, cols, chans, (0, H))
    wbytes = nc * K * K * CIN
    ifp.insns = [
        Insn(Opcode.LOAD, dict(to=Buffer.WBUF, ddr=W_OFF + c0 * K * K * CIN, buf=0,
                               n0=1, n1=1, n2=wbytes)),
        Insn(Opcode.LOAD, dict(to=Buffer.PBUF, ddr=P_OFF + c0 * PARAM_RECORD_BYTES, buf=0,
                               n0=1, n1=1, n2=nc * PARAM_RECORD_BYTES)),
        Insn(Opcode.LOAD, dict(to=Buffer.IBUF, ddr=IN_OFF + in_lo * CIN, buf=0, n0=H,
                               n1=in_hi - in_lo, n2=CIN, stride0=W * CIN, stride1=CIN,
                               pad_t=1, pad_b=1, pad_l=pad_l, pad_r=pad_r, pad_value=IN_ZP,
                               deps=Dep.SIGNAL_NEXT)),
        Insn(Opcode.CONV, dict(in_addr=0, w_addr=0, out_addr=0, p_addr=0, in_h=H + 2,
                               in_w=in_w, in_c=CIN, out_c=nc, groups=1, kh=K, kw=K,
                               stride_h=1, stride_w=1, pad_value=IN_ZP, out_zp=OUT_ZP,
                               act=Act.RELU, act_lo=OUT_ZP, act_hi=127,
                               deps=Dep.WAIT_PREV | Dep.SIGNAL_NEXT)),
        Insn(Opcode.SAVE, dict(**{"from": Buffer.OBUF}, ddr=CONV_OFF + (x0 * COUT + c0), buf=0,
                               n0=H, n1=x1 - x0, n2=nc, stride0=W * COUT, stride1=COUT,
                               deps=Dep.WAIT_PREV)),
    ]
    return ifp


def _pool_tile(layer: int, core: int, cols: tuple[int, int]) -> Ifp:
    """2x2/2 max pooling of conv output columns ``cols`` (even bounds) on ``core``."""
    x0, x1 = cols
    ifp = Ifp(layer, core, (x0 // 2, x1 // 2), (0, COUT), (0, H // 2))
    ifp.insns = [
        Insn(Opcode.LOAD, dict(to=Buffer.IBUF, ddr=CONV_OFF + x0 * COUT, buf=0, n0=H,
                               n1=x1 - x0, n2=COUT, stride0=W * COUT, stride1=COUT,
                               deps=Dep.SIGNAL_NEXT)),
        Insn(Opcode.POOL, dict(mode=PoolMode.MAX, in_addr=0, out_addr=0, in_h=H, in_w=x1 - x0,
                               c=COUT, kh=2, kw=2, stride_h=2, stride_w=2,
                               deps=Dep.WAIT_PREV | Dep.SIGNAL_NEXT)),
        Insn(Opcode.SAVE, dict(**{"from": Buffer.OBUF}, ddr=POOL_OFF + (x0 // 2) * COUT, buf=0,
                               n0=H // 2, n1=(x1 - x0) // 2, n2=COUT,
                               stride0=(W // 2) * COUT, stride1=COUT, deps=Dep.WAIT_PREV)),
    ]
    return ifp


def _barrier(layer: int, cores: int) -> list[Insn]:
    return [Insn(Opcode.SYNC, dict(core=c, layer=layer)) for c in range(cores)]


def _end(cores: int) -> list[Insn]:
    return [Insn(Opcode.END, dict(core=c)) for c in range(cores)]


def _conv_macs() -> int:
    return H * W * COUT * K * K * CIN


def conv_1core() -> SampleProgram:
    """The conv layer on one core, in two row halves with double-buffered ibuf/obuf, so
    the LOAD, CALC and SAVE modules overlap through dependency tokens."""
    ifp = Ifp(0, 0, (0, W), (0, COUT), (0, H))
    wbytes = COUT * K * K * CIN
    half = H // 2
    tile_in = (half + 2) * (W + 2) * CIN
    tile_out = half * W * COUT
    ins: list[Insn] = [
        Insn(Opcode.LOAD, dict(to=Buffer.WBUF, ddr=W_OFF, buf=0, n0=1, n1=1, n2=wbytes)),
        Insn(Opcode.LOAD, dict(to=Buffer.PBUF, ddr=P_OFF, buf=0, n0=1, n1=1,
                               n2=COUT * PARAM_RECORD_BYTES)),
    ]
    for t in range(2):
        r0 = t * half
        lo, hi = max(r0 - 1, 0), min(r0 + half + 1, H)
        ins.append(Insn(Opcode.LOAD, dict(
            to=Buffer.IBUF, ddr=IN_OFF + lo * W * CIN, buf=t * tile_in, n0=hi - lo, n1=W,
            n2=CIN, stride0=W * CIN, stride1=CIN, pad_t=int(t == 0), pad_b=int(t == 1),
            pad_l=1, pad_r=1, pad_value=IN_ZP, deps=Dep.SIGNAL_NEXT)))
    for t in range(2):
        ins.append(Insn(Opcode.CONV, dict(
            in_addr=t * tile_in, w_addr=0, out_addr=t * tile_out, p_addr=0, in_h=half + 2,
            in_w=W + 2, in_c=CIN, out_c=COUT, groups=1, kh=K, kw=K, stride_h=1, stride_w=1,
            pad_value=IN_ZP, out_zp=OUT_ZP, act=Act.RELU, act_lo=OUT_ZP, act_hi=127,
            deps=Dep.WAIT_PREV | Dep.SIGNAL_NEXT)))
    for t in range(2):
        ins.append(Insn(Opcode.SAVE, dict(
            **{"from": Buffer.OBUF}, ddr=CONV_OFF + t * half * W * COUT, buf=t * tile_out,
            n0=half, n1=W, n2=COUT, stride0=W * COUT, stride1=COUT, deps=Dep.WAIT_PREV)))
    ifp.insns = ins
    return SampleProgram(
        "conv_1core",
        "3x3 conv 16x16x16 -> 16x16x32 + ReLU on 1 core, double-buffered in two row halves",
        [("conv", "conv", _conv_macs())],
        [ifp, *_barrier(0, 1), *_end(1)],
        _data(),
        _tensors(False),
    )


def conv_split_oc() -> SampleProgram:
    """The conv layer split across 4 cores by output channel (8 channels each); each core
    saves at its channel offset of the shared output tensor."""
    body: list[Ifp | Insn] = [_conv_tile(0, c, (0, W), (8 * c, 8 * c + 8)) for c in range(4)]
    return SampleProgram(
        "conv_split_oc",
        "the conv layer split across 4 cores along output channels",
        [("conv", "conv", _conv_macs())],
        [*body, *_barrier(0, 4), *_end(4)],
        _data(),
        _tensors(False),
    )


def conv_split_w() -> SampleProgram:
    """The conv layer split across 4 cores by width (4 output columns each); each core
    loads its input columns plus a one-column halo, padding only at the image border."""
    body: list[Ifp | Insn] = [_conv_tile(0, c, (4 * c, 4 * c + 4), (0, COUT)) for c in range(4)]
    return SampleProgram(
        "conv_split_w",
        "the conv layer split across 4 cores along width",
        [("conv", "conv", _conv_macs())],
        [*body, *_barrier(0, 4), *_end(4)],
        _data(),
        _tensors(False),
    )


def demo_2layer() -> SampleProgram:
    """Two layers on 4 cores: the conv split by output channel, a barrier, then 2x2 max
    pooling split by width, a barrier, END."""
    conv = [_conv_tile(0, c, (0, W), (8 * c, 8 * c + 8)) for c in range(4)]
    pool = [_pool_tile(1, c, (4 * c, 4 * c + 4)) for c in range(4)]
    return SampleProgram(
        "demo_2layer",
        "conv (4 cores, by output channel) then 2x2 max pool (4 cores, by width)",
        [("conv", "conv", _conv_macs()), ("pool", "pool", 0)],
        [*conv, *_barrier(0, 4), *pool, *_barrier(1, 4), *_end(4)],
        _data(),
        _tensors(True),
    )


SAMPLES = {f.__name__: f for f in (conv_1core, conv_split_oc, conv_split_w, demo_2layer)}


def sample_input(seed: int = 3) -> np.ndarray:
    """The samples' seeded int8 input, NHWC 1x16x16x16."""
    return np.random.default_rng(seed).integers(-128, 128, size=(1, H, W, CIN), dtype=np.int8)


def examples_dir() -> Path:
    """The folder holding the bundled ``.s`` files."""
    return Path(__file__).parent


def _buffer_use(insns: list[Insn]) -> dict[str, int]:
    """Highest on-chip byte each buffer is touched at by ``insns`` (bytes used)."""
    use = dict.fromkeys(BUFFER_NAMES, 0)
    for ins in insns:
        f = ins.fields
        if ins.op is Opcode.LOAD:
            written = written_range(ins.op, f)
            assert written is not None
            key = BUFFER_NAMES[written[0]]
            use[key] = max(use[key], written[2])
        elif ins.op is Opcode.SAVE:
            use["obuf"] = max(use["obuf"], f["buf"] + f["n0"] * f["n1"] * f["n2"])
    return use


def ifp_cycles(insns: list[Insn], hw: HardwareConfig) -> int:
    """A roofline estimate of an IFP's cycles on one core: compute at full PE utilisation
    against DDR traffic at the core's bandwidth, plus per-instruction setup costs. (The
    compiler's own latency model is the ``ifp-estimate-latency`` pass.)"""
    macs = 0
    nbytes = 0
    setup = 0
    c = hw.costs
    for ins in insns:
        f = ins.fields
        if ins.op is Opcode.CONV:
            oh = f["in_h"] - f["kh"] + 1
            ow = f["in_w"] - f["kw"] + 1
            macs += oh * ow * f["out_c"] * f["kh"] * f["kw"] * f["in_c"] // max(f["groups"], 1)
            setup += c.calc_setup_cycles
        elif ins.op in (Opcode.LOAD, Opcode.SAVE):
            nbytes += f["n0"] * f["n1"] * f["n2"]
            setup += c.load_setup_cycles if ins.op is Opcode.LOAD else c.save_setup_cycles
        else:
            setup += c.calc_setup_cycles
    compute = -(-macs // hw.macs_per_cycle)
    memory = int(nbytes / hw.core_bandwidth_bytes_per_cycle())
    return max(compute, memory) + setup


def to_vfb(sample: SampleProgram, hw: HardwareConfig) -> VfbFile:
    """The sample as a binary for ``hw``: IFP table, layer table, memory map, constants."""
    text = bytearray()
    ifps = empty_ifps(sum(isinstance(b, Ifp) for b in sample.body))
    layers = [Layer(name=n, kind=k, macs=m) for n, k, m in sample.layers]
    k = 0
    for item in sample.body:
        if isinstance(item, Ifp):
            rec = ifps[k]
            rec["layer"], rec["core"] = item.layer, item.core
            rec["w0"], rec["w1"] = item.w
            rec["c0"], rec["c1"] = item.c
            rec["h0"], rec["h1"] = item.h
            rec["insn_offset"] = len(text) // 64
            rec["insn_count"] = len(item.insns)
            rec["latency"] = ifp_cycles(item.insns, hw)
            for buf, used in _buffer_use(item.insns).items():
                rec[buf] = used
            for ins in item.insns:
                text += encode_one(ins.op, core=item.core, layer=item.layer, **ins.fields)
            k += 1
        else:
            text += encode_one(item.op, **item.fields)
    for li, layer in enumerate(layers):
        idx = np.flatnonzero(ifps["layer"] == li)
        layer.first_ifp, layer.ifp_count = int(idx[0]), len(idx)
    tensors = [
        Tensor(name=str(t["name"]), role=str(t["role"]), dtype="int8", layout="nhwc",
               shape=tuple(t["shape"]), ddr_offset=int(t["ddr_offset"]),
               size=int(np.prod(t["shape"])), scale=float(t["scale"]),
               zero_point=int(t["zero_point"]))
        for t in sample.tensors
    ]
    n_cores = max(int(ifps["core"].max()) + 1, 1)
    return VfbFile.for_hw(hw, ddr_size=DDR_SIZE, data_offset=W_OFF, num_cores=n_cores,
                          text=bytes(text), ifps=ifps, layers=layers, tensors=tensors,
                          data=sample.data)


def write_samples(folder: Path | None = None) -> list[Path]:
    """Write every sample as assembly (``NAME.s``) into ``folder`` (default: this package)."""
    from vfpga.backend.disasm import disassemble
    from vfpga.hw import load_hw

    hw = load_hw(DEFAULT_HW)
    folder = folder or examples_dir()
    paths = []
    for name, build in SAMPLES.items():
        sample = build()
        text = disassemble(to_vfb(sample, hw), full_data=True)
        header = (
            f"; {name}.s: {sample.description}.\n"
            "; Generated by `python -m vfpga.examples.conv_samples` from the hand-built program\n"
            "; in vfpga/examples/conv_samples.py (see its docstring for the DDR map).\n"
        )
        path = folder / f"{name}.s"
        path.write_text(header + text)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write_samples():
        print(p)
