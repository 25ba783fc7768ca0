"""Load-time bounds on every instruction's work (docs/isa.md, "Budgets").

A binary is hostile until checked. The run-time checks (:mod:`vfpga.emulator.core`) stop
an instruction that reads or writes past a buffer, but only once its operands are known;
a CONV whose output or window is huge would first allocate and compute it. So before a
program runs, :func:`check_work_bounds` checks every instruction of its TEXT against the
hardware's buffers, from its fields alone:

- LOAD: the padded box ``(pad_t + n0 + pad_b) x (pad_l + n1 + pad_r) x n2`` fits its
  target buffer; SAVE: ``n0 x n1 x n2`` fits obuf;
- CONV: the input tile fits ibuf, the weights wbuf, the parameter records pbuf, the
  output (int8, or int32 with ``acc_out``) obuf or abuf, the partial sums read with
  ``acc_in`` abuf; POOL: input ibuf, output obuf; ELTWISE: both operands ibuf, the
  result obuf; RESIZE: input tile ibuf, output tile obuf;
- CONV and POOL: the multiply-accumulates (window elements) of one instruction are at
  most :data:`MAX_INSN_MACS`, a budget of the emulator (about 7x the largest CONV the
  compiler emits for the paper's models: Inception v3 39M, VGG-16 38M, ResNet-50 31M,
  MobileNet 17M MACs), which bounds one instruction's time and working memory.

A violation raises :class:`~vfpga.errors.BinaryFormatError` naming the instruction, the
quantity and the limit; nothing is run.
"""

from __future__ import annotations

import numpy as np

from vfpga.errors import BinaryFormatError
from vfpga.hw.config import BUFFER_NAMES, HardwareConfig
from vfpga.isa.codec import Program, flag_value
from vfpga.isa.effects import conv_extent, window_out_array
from vfpga.isa.spec import (
    ACT_TABLE_BYTES,
    LOAD_TARGETS,
    PARAM_RECORD_BYTES,
    Act,
    Buffer,
    Opcode,
    PoolMode,
)

#: Most multiply-accumulates (CONV) or window elements (POOL) one instruction may do.
MAX_INSN_MACS = 1 << 28


def _i64(rec: np.ndarray, name: str) -> np.ndarray:
    return rec[name].astype(np.int64)


def check_work_bounds(program: Program, hw: HardwareConfig, source: str) -> None:
    """Raise :class:`BinaryFormatError` if an instruction of ``program`` would touch more
    of a buffer than ``hw`` has, or do more than :data:`MAX_INSN_MACS` (module doc)."""
    size = {b: hw.buffer_size(BUFFER_NAMES[b]) for b in Buffer}

    def fail(op: Opcode, k: int, what: str, need: int, limit: int, unit: str) -> None:
        i = int(program.index_of[op][k])
        raise BinaryFormatError(
            f"{source}: instruction #{i} ({op.name}, core {int(program.core[i])}, layer "
            f"{int(program.layer[i])}): {what} is {need:,} {unit}, more than {limit:,}; "
            "the hardware cannot run it (recompile; hand-written code must tile its work)"
        )

    def check(op: Opcode, need: np.ndarray, limit: int | np.ndarray, what: str,
              unit: str = "bytes") -> None:
        bad = np.flatnonzero(need > limit)
        if bad.size:
            k = int(bad[0])
            lim = int(limit[k]) if isinstance(limit, np.ndarray) else int(limit)
            fail(op, k, what, int(need[k]), lim, unit)

    r = program.by_op[Opcode.LOAD]
    if len(r):
        f = lambda n: _i64(r, n)  # noqa: E731
        rows = f("pad_t") + f("n0") + f("pad_b")
        cols = f("pad_l") + f("n1") + f("pad_r")
        to = np.asarray(flag_value(Opcode.LOAD, r["flags"], "to")).astype(np.int64)
        table = np.zeros(8, np.int64)  # the 3-bit target field; LOAD_TARGETS only
        for b in LOAD_TARGETS:
            table[b] = size[b]
        cap = table[to & 7]
        check(Opcode.LOAD, rows * cols * f("n2"), cap, "the padded box")
    r = program.by_op[Opcode.SAVE]
    if len(r):
        f = lambda n: _i64(r, n)  # noqa: E731
        check(Opcode.SAVE, f("n0") * f("n1") * f("n2"), size[Buffer.OBUF], "the box")
    r = program.by_op[Opcode.CONV]
    if len(r):
        f = lambda n: _i64(r, n)  # noqa: E731
        g = np.maximum(f("groups"), 1)
        vh, kh = conv_extent(f("in_h"), f("kh"), f("dil_h"), f("ups_h"))
        vw, kw = conv_extent(f("in_w"), f("kw"), f("dil_w"), f("ups_w"))
        oh = window_out_array(vh, kh, f("stride_h"), f("pad_t"), f("pad_b"))
        ow = window_out_array(vw, kw, f("stride_w"), f("pad_l"), f("pad_r"))
        acc_out = np.asarray(flag_value(Opcode.CONV, r["flags"], "acc_out")).astype(bool)
        acc_in = np.asarray(flag_value(Opcode.CONV, r["flags"], "acc_in")).astype(bool)
        outn = oh * ow * f("out_c")
        check(Opcode.CONV, f("in_h") * f("in_w") * f("in_c"), size[Buffer.IBUF],
              "the input tile")
        check(Opcode.CONV, f("out_c") * f("kh") * f("kw") * (f("in_c") // g),
              size[Buffer.WBUF], "the weights")
        table = ~acc_out & (np.asarray(flag_value(Opcode.CONV, r["flags"], "act")) == Act.TABLE)
        check(Opcode.CONV, f("out_c") * PARAM_RECORD_BYTES + np.where(table, ACT_TABLE_BYTES, 0),
              size[Buffer.PBUF], "the parameter records (and activation table)")
        cap = np.where(acc_out, size[Buffer.ABUF], size[Buffer.OBUF])
        check(Opcode.CONV, np.where(acc_out, 4 * outn, outn), cap, "the output")
        check(Opcode.CONV, np.where(acc_in, 4 * outn, 0), size[Buffer.ABUF],
              "the partial sums read (acc_in)")
        check(Opcode.CONV, outn * f("kh") * f("kw") * (f("in_c") // g), MAX_INSN_MACS,
              "the multiply-accumulate count", "MACs")
        check(Opcode.CONV, vh * vw * f("in_c"), MAX_INSN_MACS,
              "the upsampled input (ups_h, ups_w)", "elements")
    r = program.by_op[Opcode.POOL]
    if len(r):
        f = lambda n: _i64(r, n)  # noqa: E731
        mode = np.asarray(flag_value(Opcode.POOL, r["flags"], "mode")).astype(np.int64)
        glob = mode == int(PoolMode.GLOBAL_AVG)
        oh = np.where(glob, 1, window_out_array(f("in_h"), f("kh"), f("stride_h"), f("pad_t"),
                                                f("pad_b")))
        ow = np.where(glob, 1, window_out_array(f("in_w"), f("kw"), f("stride_w"), f("pad_l"),
                                                f("pad_r")))
        check(Opcode.POOL, f("in_h") * f("in_w") * f("c"), size[Buffer.IBUF], "the input tile")
        check(Opcode.POOL, oh * ow * f("c"), size[Buffer.OBUF], "the output")
        work = np.where(glob, f("in_h") * f("in_w"), oh * ow * f("kh") * f("kw")) * f("c")
        check(Opcode.POOL, work, MAX_INSN_MACS, "the window element count", "elements")
    r = program.by_op[Opcode.ELTWISE]
    if len(r):
        n = _i64(r, "n")
        check(Opcode.ELTWISE, n, size[Buffer.IBUF], "operand A")
        check(Opcode.ELTWISE, _i64(r, "b_period"), size[Buffer.IBUF], "operand B's period")
        check(Opcode.ELTWISE, n, size[Buffer.OBUF], "the result")
    r = program.by_op[Opcode.RESIZE]
    if len(r):
        f = lambda n: _i64(r, n)  # noqa: E731
        check(Opcode.RESIZE, f("in_h") * f("in_w") * f("c"), size[Buffer.IBUF],
              "the input tile")
        check(Opcode.RESIZE, f("out_h") * f("out_w") * f("c"), size[Buffer.OBUF], "the output")
