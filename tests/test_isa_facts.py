"""One home per ISA fact (vfpga/isa/limits.py, effects.py, float32.format_f32,
vfpga/hw/costs.py, DEFAULT_HW): every layer that checks a fact gives the same answer."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.utils.exceptions import VerifyException

from vfpga.backend import asm
from vfpga.backend.asm import _deps_value, _Err
from vfpga.backend.binary import validate
from vfpga.cli.main import cli
from vfpga.compiler import latency
from vfpga.dialects import isa as isa_dialect
from vfpga.emulator import timing
from vfpga.emulator.plan import calc_accesses
from vfpga.errors import AsmError, BinaryFormatError, DecodeError
from vfpga.hw import DEFAULT_HW, costs, load_hw
from vfpga.isa.codec import decode, encode_one
from vfpga.isa.effects import out_hw, window_out, window_out_array, written_range
from vfpga.isa.float32 import format_f32
from vfpga.isa.limits import DEP_BITS, ILLEGAL_DEPS, MAX_CORES
from vfpga.isa.spec import MODULE_OF, Buffer, Opcode, PoolMode

# a valid field set per opcode (deps aside), so only the dependency bits can be rejected
_BASE: dict[Opcode, dict[str, int | float]] = {
    Opcode.LOAD: {"to": int(Buffer.IBUF), "n0": 1, "n1": 1, "n2": 1},
    Opcode.SAVE: {"from": int(Buffer.OBUF), "n0": 1, "n1": 1, "n2": 1},
    Opcode.CONV: {"in_h": 3, "in_w": 3, "in_c": 1, "out_c": 1, "groups": 1, "kh": 3, "kw": 3,
                  "stride_h": 1, "stride_w": 1},
    Opcode.POOL: {"mode": int(PoolMode.MAX), "in_h": 2, "in_w": 2, "c": 1, "kh": 2, "kw": 2,
                  "stride_h": 2, "stride_w": 2},
    Opcode.ELTWISE: {"n": 1},
    Opcode.RESIZE: {"in_h": 2, "in_w": 2, "c": 1, "out_h": 4, "out_w": 4, "map_in_h": 2,
                    "map_in_w": 2, "map_out_h": 4, "map_out_w": 4, "scale_h": 2.0,
                    "scale_w": 2.0, "in_scale": 0.1, "out_scale": 0.1},
    Opcode.SYNC: {},
    Opcode.END: {},
}


def _asm_accepts(op: Opcode, bits: int) -> bool:
    names = [n for n, b in asm.DEP_NAMES.items() if bits & b]
    try:
        _deps_value(op, ",".join(names) or "-")
    except _Err:
        return False
    return True


def _codec_accepts(op: Opcode, bits: int) -> bool:
    try:
        decode(encode_one(op, deps=bits, **_BASE[op]))
    except DecodeError as exc:
        assert "dependency" in str(exc)
        return False
    return True


def _dialect_accepts(op: Opcode, bits: int) -> bool:
    try:
        isa_dialect.fields_to_op(op, {**_BASE[op], "deps": bits}).verify()
    except VerifyException as exc:
        assert "dependency" in str(exc)
        return False
    return True


@pytest.mark.parametrize("op", list(Opcode), ids=lambda o: o.name)
def test_dependency_legality_is_one_table(op: Opcode) -> None:
    """For every opcode and every combination of the four dependency bits, the assembler,
    the decoder and the ``isa`` dialect verifier accept exactly what ILLEGAL_DEPS allows."""
    for bits in range(DEP_BITS + 1):
        legal = not bits & ILLEGAL_DEPS[MODULE_OF[op]]
        assert _asm_accepts(op, bits) is legal, (op, bits)
        assert _codec_accepts(op, bits) is legal, (op, bits)
        assert _dialect_accepts(op, bits) is legal, (op, bits)


def test_reserved_dependency_bits_are_rejected_for_every_opcode() -> None:
    for op in Opcode:
        word = bytearray(encode_one(op, **_BASE[op]))
        word[4] |= 0x10  # the first bit above DEP_BITS
        with pytest.raises(DecodeError, match="dependency"):
            decode(bytes(word))


def test_core_limit_is_one_number() -> None:
    """Core index MAX_CORES - 1 is accepted and MAX_CORES refused by the assembler, the
    dialect verifier and the binary validator (num_cores up to MAX_CORES)."""
    assert MAX_CORES == 64
    assert isa_dialect.MAX_CORE == MAX_CORES - 1
    sync = isa_dialect.fields_to_op(Opcode.SYNC, {"core": MAX_CORES - 1})
    sync.verify()
    with pytest.raises(VerifyException):
        isa_dialect.fields_to_op(Opcode.SYNC, {"core": MAX_CORES}).verify()
    prog = ".program cores={n}\nend core={c} layer=0\n"
    vfb = asm.assemble(prog.format(n=MAX_CORES, c=MAX_CORES - 1))
    assert vfb.num_cores == MAX_CORES
    validate(vfb, "<test>")
    with pytest.raises(AsmError, match=f"core={MAX_CORES} is out of range"):
        asm.assemble(prog.format(n=MAX_CORES, c=MAX_CORES))
    with pytest.raises(AsmError, match=f"cores={MAX_CORES + 1} is out of range"):
        asm.assemble(prog.format(n=MAX_CORES + 1, c=0))
    with pytest.raises(BinaryFormatError, match="num_cores"):
        validate(replace(vfb, num_cores=MAX_CORES + 1), "<test>")


def test_window_out_formula() -> None:
    assert window_out(224, 7, 2, 3, 3) == 112
    assert window_out(3, 3, 1, 0, 0) == 1
    assert window_out(2, 3, 1, 0, 0) == 0  # does not fit
    assert window_out(5, 1, 0, 0, 0) == 5  # an invalid stride counts as 1
    assert window_out(5, 0, 1, 0, 0) == 5  # and so does an invalid kernel
    rng = np.random.default_rng(0)
    n, k, s, lo, hi = (rng.integers(-1, 9, 500) for _ in range(5))
    want = [max(window_out(*map(int, a)), 0) for a in zip(n, k, s, lo, hi, strict=True)]
    assert window_out_array(n, k, s, lo, hi).tolist() == want
    assert out_hw({"in_h": 7, "in_w": 9, "kh": 3, "kw": 3, "stride_h": 2, "stride_w": 1,
                   "pad_t": 1, "pad_b": 1}) == (4, 7)


@settings(max_examples=300, deadline=None)
@given(
    op=st.sampled_from([Opcode.CONV, Opcode.POOL, Opcode.ELTWISE]),
    hw_=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    pads=st.tuples(*[st.integers(0, 2)] * 4),
    c=st.integers(1, 9),
    acc_out=st.booleans(),
    mode=st.sampled_from(list(PoolMode)),
    addr=st.integers(0, 64).map(lambda a: 4 * a),
)
def test_written_range_is_what_the_emulator_writes(op, hw_, k, s, pads, c, acc_out, mode,
                                                   addr) -> None:
    """The emulator's own list of a CALC instruction's accesses writes exactly the range
    :func:`written_range` (the compiler's buffer footprint) names."""
    f = dict.fromkeys(isa_dialect.FIELD_ORDER[op], 0)
    f["opcode"] = int(op)
    if op is Opcode.ELTWISE:
        f.update(n=c * 7, out_addr=addr)
    else:
        f.update(in_h=hw_[0], in_w=hw_[1], kh=k[0], kw=k[1], stride_h=s[0], stride_w=s[1],
                 pad_t=pads[0], pad_b=pads[1], pad_l=pads[2], pad_r=pads[3], out_addr=addr)
        if op is Opcode.CONV:
            f.update(in_c=c, out_c=c, groups=1, acc_out=int(acc_out))
        else:
            f.update(c=c, mode=int(mode))
    oh, ow = out_hw(f)
    if op is not Opcode.ELTWISE and not (op is Opcode.POOL and mode is PoolMode.GLOBAL_AVG) \
            and (oh < 1 or ow < 1):
        return  # the window does not fit: the emulator faults, nothing is written
    writes = [(b, a, a + n) for b, a, n, _align, w in calc_accesses(f) if w]
    assert writes == [written_range(op, f)]


def test_written_range_of_load_save_sync() -> None:
    f = {"to": int(Buffer.WBUF), "buf": 100, "n0": 2, "n1": 3, "n2": 4, "pad_t": 1,
         "pad_l": 1, "pad_r": 1}
    assert written_range(Opcode.LOAD, f) == (Buffer.WBUF, 100, 100 + 3 * 5 * 4)
    assert written_range(Opcode.SAVE, {"from": 3, "n0": 1, "n1": 1, "n2": 1}) is None
    assert written_range(Opcode.SYNC, {}) is None


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_format_f32_reads_back_exactly(bits: int) -> None:
    """Every float32: finite values print as an MLIR float literal that reads back (through
    float64, as the parsers read it) to the same bits; others as their hex bits."""
    v = np.array([bits], dtype=np.uint32).view(np.float32)[0]
    text = format_f32(float(v))
    if np.isfinite(v):
        assert "." in text
        assert np.float32(float(text)).tobytes() == v.tobytes()
    else:  # a signalling NaN arrives quieted: float() goes through float64
        seen = int(np.array([float(v)], dtype=np.float32).view(np.uint32)[0])
        assert text == f"0x{seen:08X}"


def test_format_f32_is_shared_by_both_dialects() -> None:
    from vfpga.dialects import dnn

    assert dnn.format_f32 is format_f32 is isa_dialect.format_f32
    assert format_f32(123456789.0) == "123456790.0"
    assert format_f32(1e-5) == "1.0e-05"
    assert format_f32(float("nan")) == "0x7FC00000"


def test_cycle_costs_have_one_home() -> None:
    """The static latency model and the emulator's timing model charge the same costs."""
    assert latency.insn_cycles is costs.insn_cycles
    assert timing.compute_cycles is costs.compute_cycles
    assert timing.core_bytes_per_cycle is costs.core_bytes_per_cycle
    hw = load_hw(DEFAULT_HW)
    conv = {"in_h": 10, "in_w": 10, "in_c": 16, "out_c": 16, "groups": 1, "kh": 3, "kw": 3,
            "stride_h": 1, "stride_w": 1}
    # 8 x ceil(8/4) pixels x ceil(16/8) oc x ceil(16/8) ic x 9 taps
    assert costs.compute_cycles(Opcode.CONV, conv, hw) == 8 * 2 * 2 * 2 * 9


def test_default_preset_name() -> None:
    assert DEFAULT_HW == "pool16"
    assert load_hw().name == DEFAULT_HW
    assert asm.DEFAULT_HW is DEFAULT_HW
    res = CliRunner().invoke(cli, ["hw", "show", "--json"])
    assert res.exit_code == 0, res.output
    assert f'"name": "{DEFAULT_HW}"' in res.output
