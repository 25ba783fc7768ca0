"""Random CONV, POOL and ELTWISE instructions run through the whole emulator path
(encode -> decode -> LOAD into buffers -> CALC -> SAVE to DDR) and compared exactly with
the independent reference of tests/isa_reference.py."""

from __future__ import annotations

import itertools

import isa_reference as ref
import numpy as np
import pytest
from emu_helpers import Image, TensorInfo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vfpga.emulator import Accelerator
from vfpga.hw import load_hw
from vfpga.isa.codec import encode_one
from vfpga.isa.float32 import eltwise_offset
from vfpga.isa.spec import (
    OPCODE_DTYPES,
    PARAM_RECORD_BYTES,
    PARAM_RECORD_DTYPE,
    Act,
    Buffer,
    Dep,
    Opcode,
    PoolMode,
)

HW = load_hw("pool16")
ACC = Accelerator(HW, ddr_bytes=1 << 24)
_names = itertools.count()
SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

#: The clamp activations (``act = TABLE`` with its pbuf table: test_emulator.py).
CLAMP_ACTS = [a for a in Act if a is not Act.TABLE]


def run_program(insns: list[tuple[Opcode, dict]], data: bytes, out_off: int, out_shape):
    """Run one core's instructions (SYNC/END appended) with ``data`` at DDR 0."""
    text = b"".join(encode_one(op, **f) for op, f in insns)
    text += encode_one(Opcode.SYNC, layer=0) + encode_one(Opcode.END)
    size = max(out_off + int(np.prod(out_shape)), len(data)) + 64
    out = TensorInfo("out", "output", tuple(out_shape), out_off, 1.0, 0, layout="raw")
    img = Image(text, data, 0, size, [out])
    t = ACC.create_task(f"t{next(_names)}", [int(np.random.default_rng().integers(16))], size)
    try:
        t.load(img)
        res = ACC.run([t], raise_on_fault=True)[t.name]
        assert res.ok
        return t.read_tensor("out")
    finally:
        ACC.release_task(t)


def _load(to: Buffer, ddr: int, nbytes: int, buf: int = 0, deps: int = 0) -> tuple:
    return (Opcode.LOAD, dict(to=to, ddr=ddr, buf=buf, n0=1, n1=1, n2=nbytes, deps=deps))


def _save(buf: int, ddr: int, nbytes: int) -> tuple:
    return (Opcode.SAVE, {"from": Buffer.OBUF, "ddr": ddr, "buf": buf, "n0": 1, "n1": 1,
                          "n2": nbytes, "deps": Dep.WAIT_PREV})


def _f32s(rng: np.random.Generator, n: int, magnitude: float) -> np.ndarray:
    """``n`` float32 values around ``magnitude`` with random 24-bit mantissas."""
    return (magnitude * rng.uniform(0.5, 2.0, n)).astype(np.float32)


def _records(bias: np.ndarray, scale: np.ndarray, divisor: np.ndarray | float) -> np.ndarray:
    """pbuf parameter records (bias int32, scale float32, divisor float32)."""
    rec = np.zeros(len(bias), PARAM_RECORD_DTYPE)
    rec["bias"], rec["scale"], rec["divisor"] = bias, scale, divisor
    return rec


@st.composite
def conv_case(draw):
    groups_kind = draw(st.sampled_from(["normal", "grouped", "depthwise"]))
    if groups_kind == "depthwise":
        c = draw(st.integers(1, 16))
        in_c = out_c = groups = c
    elif groups_kind == "grouped":
        groups = draw(st.integers(2, 4))
        in_c = groups * draw(st.integers(1, 4))
        out_c = groups * draw(st.integers(1, 4))
    else:
        groups, in_c, out_c = 1, draw(st.integers(1, 24)), draw(st.integers(1, 24))
    kh = draw(st.sampled_from([1, 1, 2, 3, 3, 5, 7, 11]))
    kw = draw(st.sampled_from([1, 1, 2, 3, 3, 5, 7, 11]))
    pads = tuple(draw(st.integers(0, 3)) for _ in range(4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    in_h = draw(st.integers(max(1, kh - pads[0] - pads[1]), 12))
    in_w = draw(st.integers(max(1, kw - pads[2] - pads[3]), 12))
    seed = draw(st.integers(0, 2**32 - 1))
    act = draw(st.sampled_from(CLAMP_ACTS))
    split = draw(st.booleans()) and in_c > 1 and groups == 1
    return dict(in_h=in_h, in_w=in_w, in_c=in_c, out_c=out_c, groups=groups, kh=kh, kw=kw,
                sh=sh, sw=sw, pads=pads, seed=seed, act=act, split=split)


@SETTINGS
@given(conv_case())
def test_conv_instruction_matches_reference(case):
    rng = np.random.default_rng(case["seed"])
    in_h, in_w, in_c, out_c, g = (case[k] for k in ("in_h", "in_w", "in_c", "out_c", "groups"))
    kh, kw, pads = case["kh"], case["kw"], case["pads"]
    cig = in_c // g
    x = rng.integers(-128, 128, (in_h, in_w, in_c), dtype=np.int8)
    w = rng.integers(-128, 128, (out_c, kh, kw, cig), dtype=np.int8)
    scale = _f32s(rng, out_c, 40.0 / (np.sqrt(kh * kw * cig) * 5000))
    divisor = _f32s(rng, out_c, 1.0) if rng.random() < 0.5 else np.float32(1.0)
    bias = rng.integers(-50000, 50000, out_c)
    params = _records(bias, scale, divisor)
    pad_value, out_zp = (int(v) for v in rng.integers(-128, 128, 2))
    lo = out_zp
    hi = int(rng.integers(lo, 128))
    oh = (in_h + pads[0] + pads[1] - kh) // case["sh"] + 1
    ow = (in_w + pads[2] + pads[3] - kw) // case["sw"] + 1
    x_off, w_off = 0, x.nbytes
    p_off = w_off + w.nbytes
    p_off += -p_off % 4
    out_off = p_off + params.nbytes
    data = bytearray(out_off)
    data[x_off : x_off + x.nbytes] = x.tobytes()
    data[w_off : w_off + w.nbytes] = w.tobytes()
    data[p_off : p_off + params.nbytes] = params.tobytes()
    common = dict(kh=kh, kw=kw, stride_h=case["sh"], stride_w=case["sw"], pad_t=pads[0],
                  pad_b=pads[1], pad_l=pads[2], pad_r=pads[3], pad_value=pad_value,
                  out_zp=out_zp, act=case["act"], act_lo=lo, act_hi=hi, in_h=in_h, in_w=in_w,
                  out_c=out_c, p_addr=0)
    insns: list[tuple] = [_load(Buffer.PBUF, p_off, params.nbytes)]
    if not case["split"]:
        insns.insert(0, _load(Buffer.WBUF, w_off, w.nbytes))
    if case["split"]:
        # two input-channel chunks: partial sums through abuf (acc_out, then acc_in)
        c1 = in_c // 2
        for part, (a, b) in enumerate(((0, c1), (c1, in_c))):
            xs = np.ascontiguousarray(x[:, :, a:b])
            ws = np.ascontiguousarray(w[:, :, :, a:b])
            data += xs.tobytes() + ws.tobytes()
            xo, wo = len(data) - xs.nbytes - ws.nbytes, len(data) - ws.nbytes
            ibuf_at, wbuf_at = part * 8192, part * 65536
            insns.append(_load(Buffer.WBUF, wo, ws.nbytes, buf=wbuf_at))
            insns.append(_load(Buffer.IBUF, xo, xs.nbytes, buf=ibuf_at, deps=Dep.SIGNAL_NEXT))
            insns.append((Opcode.CONV, dict(common, in_addr=ibuf_at, w_addr=wbuf_at, in_c=b - a,
                                            groups=1, acc_in=part, acc_out=1 - part,
                                            acc_addr=0, out_addr=0,
                                            deps=Dep.WAIT_PREV | (Dep.SIGNAL_NEXT * part))))
    else:
        insns.append(_load(Buffer.IBUF, x_off, x.nbytes, deps=Dep.SIGNAL_NEXT))
        insns.append((Opcode.CONV, dict(common, in_addr=0, w_addr=0, in_c=in_c, groups=g,
                                        out_addr=0, deps=Dep.WAIT_PREV | Dep.SIGNAL_NEXT)))
    n_out = oh * ow * out_c
    insns.append(_save(0, out_off, n_out))
    got = run_program(insns, bytes(data), out_off, (oh, ow, out_c))
    want = ref.conv(x, w, start=bias.astype(np.int64), stride=(case["sh"], case["sw"]),
                    pads=pads, pad_value=pad_value, groups=g, acc_out=False, scale=scale,
                    divisor=divisor, out_zp=out_zp, act=int(case["act"]), act_lo=lo, act_hi=hi)
    np.testing.assert_array_equal(got.view(np.int8), want)


@st.composite
def pool_case(draw):
    mode = draw(st.sampled_from(list(PoolMode)))
    c = draw(st.integers(1, 24))
    if mode is PoolMode.GLOBAL_AVG:
        kh = kw = sh = sw = 0
        pads = (0, 0, 0, 0)
        in_h, in_w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    else:
        kh, kw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
        pads = tuple(draw(st.integers(0, min(3, k - 1))) for k in (kh, kh, kw, kw))
        sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        in_h = draw(st.integers(max(1, kh - pads[0] - pads[1]), 12))
        in_w = draw(st.integers(max(1, kw - pads[2] - pads[3]), 12))
    return dict(mode=mode, c=c, kh=kh, kw=kw, sh=sh, sw=sw, pads=pads, in_h=in_h, in_w=in_w,
                seed=draw(st.integers(0, 2**32 - 1)))


@SETTINGS
@given(pool_case())
def test_pool_instruction_matches_reference(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.integers(-128, 128, (case["in_h"], case["in_w"], case["c"]), dtype=np.int8)
    mode = case["mode"]
    in_zp, out_zp = (int(v) for v in rng.integers(-128, 128, 2))
    s_in, s_out = (float(v) for v in _f32s(rng, 2, 0.05))
    if mode is PoolMode.MAX:
        scale, out_scale, in_zp, out_zp = 0.0, 0.0, 0, 0
    elif mode is PoolMode.GLOBAL_AVG:
        f32 = np.float32
        count = f32(case["in_h"] * case["in_w"])
        scale, out_scale = float(f32(s_in) / f32(f32(s_out) * count)), 0.0
    else:
        scale, out_scale = s_in, s_out
    pads = case["pads"]
    if mode is PoolMode.GLOBAL_AVG:
        oh = ow = 1
    else:
        oh = (case["in_h"] + pads[0] + pads[1] - case["kh"]) // case["sh"] + 1
        ow = (case["in_w"] + pads[2] + pads[3] - case["kw"]) // case["sw"] + 1
    out_off = x.nbytes + (-x.nbytes % 64)
    insns = [
        _load(Buffer.IBUF, 0, x.nbytes, deps=Dep.SIGNAL_NEXT),
        (Opcode.POOL, dict(mode=mode, in_addr=0, out_addr=0, in_h=case["in_h"],
                           in_w=case["in_w"], c=case["c"], kh=case["kh"], kw=case["kw"],
                           stride_h=case["sh"], stride_w=case["sw"], pad_t=pads[0],
                           pad_b=pads[1], pad_l=pads[2], pad_r=pads[3], scale=scale,
                           out_scale=out_scale, in_zp=in_zp, out_zp=out_zp,
                           deps=Dep.WAIT_PREV | Dep.SIGNAL_NEXT)),
        _save(0, out_off, oh * ow * case["c"]),
    ]
    got = run_program(insns, x.tobytes(), out_off, (oh, ow, case["c"]))
    want = ref.pool(x, mode=int(mode), kernel=(case["kh"], case["kw"]),
                    stride=(case["sh"], case["sw"]), pads=pads, scale=scale,
                    out_scale=out_scale, in_zp=in_zp, out_zp=out_zp)
    np.testing.assert_array_equal(got.view(np.int8), want)


@SETTINGS
@given(st.integers(1, 3000), st.sampled_from(CLAMP_ACTS), st.integers(0, 2**32 - 1))
def test_eltwise_instruction_matches_reference(n, act, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, n, dtype=np.int8)
    b = rng.integers(-128, 128, n, dtype=np.int8)
    sa, sb = (float(v) for v in _f32s(rng, 2, 0.5))
    a_zp, b_zp, out_zp = (int(v) for v in rng.integers(-128, 128, 3))
    offset = eltwise_offset(sa, sb, a_zp, b_zp, out_zp)
    hi = int(rng.integers(out_zp, 128))
    out_off = 2 * n + 64
    insns = [
        _load(Buffer.IBUF, 0, n),
        _load(Buffer.IBUF, n, n, buf=4096, deps=Dep.SIGNAL_NEXT),
        (Opcode.ELTWISE, dict(a_addr=0, b_addr=4096, out_addr=0, n=n, scale_a=sa, scale_b=sb,
                              offset=offset, act=act, act_lo=out_zp, act_hi=hi,
                              deps=Dep.WAIT_PREV | Dep.SIGNAL_NEXT)),
        _save(0, out_off, n),
    ]
    got = run_program(insns, a.tobytes() + b.tobytes(), out_off, (n,))
    want = ref.eltwise_add(a, b, scale_a=sa, scale_b=sb, offset=offset, act=int(act),
                           act_lo=out_zp, act_hi=hi)
    np.testing.assert_array_equal(got.view(np.int8), want)


def test_param_record_layout_is_documented_size():
    assert PARAM_RECORD_BYTES == 12 == PARAM_RECORD_DTYPE.itemsize
    assert [PARAM_RECORD_DTYPE.fields[n][1] for n in ("bias", "scale", "divisor")] == [0, 4, 8]
    assert PARAM_RECORD_DTYPE["scale"] == np.dtype("<f4")


# ------------------------------------------------------------ ISA v2 through the machine


def test_conv_ties_and_large_accumulators_through_the_machine():
    """Float32 rounding cases of the kernel tests, end to end: a product that float32
    rounds onto a tie (3 * 0.83333337 -> 2.5 -> 2), accumulators beyond 2**24, a
    divisor that adds a second rounding (9 * 0.83333337 / 3 -> 3)."""
    acc = np.array([3, 2**24 + 1, 2**24 + 3, 9], np.int32)
    scale = np.array([0.8333333730697632, 2.0**-25, 2.0**-25, 0.8333333730697632], np.float32)
    divisor = np.array([1.0, 1.0, 1.0, 3.0], np.float32)
    params = _records(acc, scale, divisor)
    x = np.zeros((1, 1, 1), np.int8)
    w = np.zeros((4, 1, 1, 1), np.int8)
    data = bytes(x.tobytes() + bytes(3) + w.tobytes() + params.tobytes())
    insns = [
        _load(Buffer.WBUF, 4, 4),
        _load(Buffer.PBUF, 8, params.nbytes),
        _load(Buffer.IBUF, 0, 1, deps=Dep.SIGNAL_NEXT),
        (Opcode.CONV, dict(in_h=1, in_w=1, in_c=1, out_c=4, groups=1, kh=1, kw=1, stride_h=1,
                           stride_w=1, deps=Dep.WAIT_PREV | Dep.SIGNAL_NEXT)),
        _save(0, 64, 4),
    ]
    got = run_program(insns, data, 64, (4,)).view(np.int8)
    assert got.tolist() == [2, 0, 1, 3]


def _fault_message(insns: list[tuple], data: bytes, patch=None) -> str:
    """Run ``insns`` and return the fault message (``patch(text)`` may edit the words)."""
    text = b"".join(encode_one(op, **f) for op, f in insns)
    if patch is not None:
        text = patch(bytearray(text))
    text += encode_one(Opcode.SYNC, layer=0) + encode_one(Opcode.END)
    img = Image(bytes(text), data, 0, 4096, [])
    t = ACC.create_task(f"t{next(_names)}", [0], 4096)
    try:
        t.load(img)
        res = ACC.run([t])[t.name]
        assert not res.ok
        return str(res.error)
    finally:
        ACC.release_task(t)


@pytest.mark.parametrize(
    ("scale", "divisor", "message"),
    [(np.nan, 1.0, "scale = nan"), (1.0, np.inf, "divisor = inf"), (1.0, 0.0, "divisor is 0")],
)
def test_invalid_param_record_faults_naming_the_instruction(scale, divisor, message):
    params = _records(np.zeros(2, np.int32), np.array([1.0, scale], np.float32),
                      np.array([1.0, divisor], np.float32))
    data = bytes(8) + params.tobytes()
    insns = [
        _load(Buffer.WBUF, 0, 2),
        _load(Buffer.PBUF, 8, params.nbytes),
        _load(Buffer.IBUF, 0, 1, deps=Dep.SIGNAL_NEXT),
        (Opcode.CONV, dict(in_h=1, in_w=1, in_c=1, out_c=2, groups=1, kh=1, kw=1, stride_h=1,
                           stride_w=1, deps=Dep.WAIT_PREV | Dep.SIGNAL_NEXT)),
        _save(0, 64, 2),
    ]
    msg = _fault_message(insns, data)
    assert "#3" in msg and "CONV" in msg.upper()
    assert "invalid parameter" in msg and message in msg and "output channel 1" in msg


def test_invalid_pool_and_eltwise_words_fault():
    pool = (Opcode.POOL, dict(mode=PoolMode.AVG, in_h=2, in_w=2, c=1, kh=2, kw=2, stride_h=1,
                              stride_w=1, scale=0.5, out_scale=0.0,
                              deps=Dep.WAIT_PREV | Dep.SIGNAL_NEXT))
    insns = [_load(Buffer.IBUF, 0, 4, deps=Dep.SIGNAL_NEXT), pool, _save(0, 64, 1)]
    assert "non-zero out_scale" in _fault_message(insns, bytes(4))
    # A NaN offset cannot be encoded (encode_one refuses it): write the bits directly.
    elt = (Opcode.ELTWISE, dict(n=4, b_addr=4, scale_a=1.0, scale_b=1.0,
                                deps=Dep.WAIT_PREV | Dep.SIGNAL_NEXT))
    insns = [_load(Buffer.IBUF, 0, 8, deps=Dep.SIGNAL_NEXT), elt, _save(0, 64, 4)]
    off = OPCODE_DTYPES[Opcode.ELTWISE].fields["offset"][1]

    def nan_offset(text: bytearray) -> bytes:
        text[64 + off : 64 + off + 4] = np.float32(np.nan).tobytes()
        return bytes(text)

    msg = _fault_message(insns, bytes(8), nan_offset)
    assert "offset = nan" in msg and "#1" in msg
