"""The vfpga instruction set: one table that the encoder, the decoder, the assembler, the
disassembler, the emulator and ``docs/isa.md`` are all derived from.

Every instruction is a fixed-width 64-byte little-endian word: an 8-byte header common to
all opcodes followed by a 56-byte payload whose fields depend on the opcode. Each opcode's
word is described by a numpy structured dtype (:data:`OPCODE_DTYPES`) so a whole
instruction blob decodes with one ``np.frombuffer`` per opcode, never field by field.

Payload fields are little-endian integers, except the float32 (IEEE-754 binary32) scale
constants of POOL and ELTWISE (:data:`FLOAT_FIELDS`; ISA versions 2 and 3 requantize in
float32 steps, docs/isa.md section *Arithmetic*).

Bits of the 8-bit ``flags`` header byte carry small opcode-specific fields
(:data:`FLAG_FIELDS`). Unused payload bytes and every reserved field must be zero: the
decoder rejects anything else, so a corrupted word is caught rather than executed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np

#: Bytes per instruction word.
INSN_BYTES = 64

#: An instruction's fields by name, as the codec encodes and decodes them: ints, and
#: Python floats for the float32 fields (:data:`FLOAT_FIELDS`). The value type is ``Any``
#: because which fields are floats depends on the opcode; absent fields are 0.
FieldDict = dict[str, Any]


class Opcode(IntEnum):
    """Instruction opcodes (header byte 0). Zero is never a valid opcode."""

    LOAD = 1
    CONV = 2
    POOL = 3
    ELTWISE = 4
    SAVE = 5
    SYNC = 6
    END = 7
    RESIZE = 8


class Module(IntEnum):
    """The three pipelined modules of a core, plus the control path (SYNC/END)."""

    LOAD = 0
    CALC = 1
    SAVE = 2
    CTRL = 3


#: A dependency-token queue: ``(sender, receiver)`` modules. The ends are typed
#: ``Module | None`` because a module's neighbour beyond LOAD or SAVE is None; no queue
#: has a None end, as :data:`vfpga.isa.limits.ILLEGAL_DEPS` forbids the bits naming one.
TokenQueue = tuple[Module | None, Module | None]

#: The module that executes each opcode.
MODULE_OF: dict[Opcode, Module] = {
    Opcode.LOAD: Module.LOAD,
    Opcode.CONV: Module.CALC,
    Opcode.POOL: Module.CALC,
    Opcode.ELTWISE: Module.CALC,
    Opcode.SAVE: Module.SAVE,
    Opcode.SYNC: Module.CTRL,
    Opcode.END: Module.CTRL,
    Opcode.RESIZE: Module.CALC,
}


class Dep(IntEnum):
    """Dependency-token bits of header byte 4 (in the manner of VTA's dependency queues).

    The modules form the pipeline LOAD -> CALC -> SAVE. For a module, *prev* is the module
    before it and *next* the one after it. ``WAIT_*`` pops one token that the neighbour
    pushed before the instruction starts (the instruction blocks until one is there);
    ``SIGNAL_*`` pushes one token to the neighbour after the instruction completes.
    LOAD has no prev and SAVE has no next; SYNC and END carry no dependency bits.
    """

    WAIT_PREV = 1 << 0
    WAIT_NEXT = 1 << 1
    SIGNAL_PREV = 1 << 2
    SIGNAL_NEXT = 1 << 3


DEP_NAMES: dict[str, Dep] = {
    "wait_prev": Dep.WAIT_PREV,
    "wait_next": Dep.WAIT_NEXT,
    "signal_prev": Dep.SIGNAL_PREV,
    "signal_next": Dep.SIGNAL_NEXT,
}


class Buffer(IntEnum):
    """On-chip buffer ids (same order as :data:`vfpga.hw.config.BUFFER_NAMES`)."""

    IBUF = 0
    WBUF = 1
    PBUF = 2
    OBUF = 3
    ABUF = 4


class Act(IntEnum):
    """Activation applied after requantization and saturation to int8.

    ``NONE``: y unchanged. ``RELU``: y = max(y, act_lo) (act_lo is the output zero point).
    ``RELU6``: y = min(max(y, act_lo), act_hi) (act_hi is 6.0 quantized).
    ``TABLE`` (CONV only): y = T[y + 128], ``T`` the :data:`ACT_TABLE_BYTES` int8 entries
    that follow the instruction's ``out_c`` parameter records in pbuf (an element-wise
    function of one int8 value: sigmoid, hard-swish, ...; ``act_lo``/``act_hi`` unused).
    """

    NONE = 0
    RELU = 1
    RELU6 = 2
    TABLE = 3


class PoolMode(IntEnum):
    """POOL modes. ``AVG_PAD`` counts padding in the divisor, ``AVG`` does not;
    ``GLOBAL_AVG`` averages the whole input tile to a 1x1 output (kernel fields are 0)."""

    MAX = 0
    AVG_PAD = 1
    AVG = 2
    GLOBAL_AVG = 3


class EltOp(IntEnum):
    """ELTWISE operations (docs/isa.md section *Arithmetic*). ``ADD``: ONNX Runtime's
    ``QLinearAdd`` on biased operands with the zero points folded into ``offset``.
    ``MUL`` (ISA version 3; ``QLinearMul``'s vectorised MLAS kernel) scales the exact
    integer product of the zero-point-corrected operands by one float32 ratio and adds
    the output zero point in float32. ``SUB`` (``DequantizeLinear -> Sub ->
    QuantizeLinear``, ISA version 3) dequantizes each operand with its zero point and
    scale, subtracts in float32 and divides by ``out_scale``."""

    ADD = 0
    MUL = 1
    SUB = 2


class CoordMode(IntEnum):
    """RESIZE's coordinate transformation (ISA version 4; ONNX
    ``coordinate_transformation_mode``): torchvision's ``align_corners=False`` exports
    ``half_pixel`` or ``pytorch_half_pixel``, ``align_corners=True`` ``align_corners``;
    PaddlePaddle's ``align_mode=1`` is ``asymmetric`` (docs/isa.md, RESIZE)."""

    HALF_PIXEL = 0
    PYTORCH_HALF_PIXEL = 1
    ALIGN_CORNERS = 2
    ASYMMETRIC = 3


@dataclass(frozen=True)
class Field:
    """One payload or header field: name (also its assembly keyword), numpy type code,
    byte offset in the 64-byte word, and its meaning."""

    name: str
    np_type: str
    offset: int
    doc: str

    @property
    def size(self) -> int:
        return np.dtype(self.np_type).itemsize


@dataclass(frozen=True)
class FlagField:
    """A bit field of the header ``flags`` byte: ``(flags >> shift) & ((1 << width) - 1)``.

    ``enum`` maps assembly names to values where the field is symbolic.
    """

    name: str
    shift: int
    width: int
    doc: str
    enum: type[IntEnum] | None = None

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.shift


HEADER_FIELDS: tuple[Field, ...] = (
    Field("opcode", "u1", 0, "Opcode (1..8); 0 is invalid."),
    Field("core", "u1", 1, "Logical core index within the task (0..63); the level-1 "
          "dispatcher maps it to a physical core of the tenant."),
    Field("layer", "u2", 2, "Layer index the instruction belongs to (0..65535)."),
    Field("deps", "u1", 4, "Dependency-token bits (see Dep): bit0 wait_prev, bit1 wait_next, "
          "bit2 signal_prev, bit3 signal_next."),
    Field("flags", "u1", 5, "Opcode-specific bit fields (see FLAG_FIELDS)."),
    Field("reserved", "u2", 6, "Reserved, must be 0."),
)

_LOAD_SAVE_BOX: tuple[Field, ...] = (
    Field("ddr", "<u4", 8, "DDR byte offset of element (0, 0, 0), relative to the tenant's "
          "base address."),
    Field("buf", "<u4", 12, "On-chip byte address of the destination (LOAD) or source (SAVE)."),
    Field("stride0", "<u4", 16, "DDR bytes between consecutive rows (dimension 0)."),
    Field("stride1", "<u4", 20, "DDR bytes between consecutive columns (dimension 1)."),
    Field("n2", "<u4", 24, "Contiguous bytes per (row, column): the channel run (dimension 2)."),
    Field("n0", "<u2", 28, "Rows (dimension 0)."),
    Field("n1", "<u2", 30, "Columns (dimension 1)."),
)

PAYLOAD_FIELDS: dict[Opcode, tuple[Field, ...]] = {
    Opcode.LOAD: (
        *_LOAD_SAVE_BOX,
        Field("pad_t", "u1", 32, "Rows of padding written above the box on chip."),
        Field("pad_b", "u1", 33, "Rows of padding written below the box on chip."),
        Field("pad_l", "u1", 34, "Columns of padding written left of the box on chip."),
        Field("pad_r", "u1", 35, "Columns of padding written right of the box on chip."),
        Field("pad_value", "i1", 36, "Byte written into padding (the input zero point)."),
    ),
    Opcode.SAVE: _LOAD_SAVE_BOX,
    Opcode.CONV: (
        Field("in_addr", "<u4", 8, "ibuf address of the input tile, int8 [in_h][in_w][in_c]."),
        Field("w_addr", "<u4", 12, "wbuf address of the weights, int8 "
              "[out_c][kh][kw][in_c/groups]."),
        Field("out_addr", "<u4", 16, "obuf address of the int8 output [out_h][out_w][out_c], "
              "or with acc_out the abuf address of int32 partial sums of that shape."),
        Field("p_addr", "<u4", 20, "pbuf address of out_c 12-byte records (bias int32, scale "
              "float32, divisor float32), little-endian; 4-byte aligned."),
        Field("acc_addr", "<u4", 24, "abuf address of int32 partial sums [out_h][out_w][out_c] "
              "added instead of the bias when acc_in is set."),
        Field("in_h", "<u2", 28, "Input tile height."),
        Field("in_w", "<u2", 30, "Input tile width."),
        Field("in_c", "<u2", 32, "Input channels of the tile."),
        Field("out_c", "<u2", 34, "Output channels computed."),
        Field("groups", "<u2", 36, "Groups (1 normal, in_c == out_c == groups depthwise)."),
        Field("kh", "u1", 38, "Kernel height (1..11)."),
        Field("kw", "u1", 39, "Kernel width (1..11)."),
        Field("stride_h", "u1", 40, "Vertical stride (>= 1)."),
        Field("stride_w", "u1", 41, "Horizontal stride (>= 1)."),
        Field("pad_t", "u1", 42, "Implicit rows of pad_value above the tile."),
        Field("pad_b", "u1", 43, "Implicit rows of pad_value below the tile."),
        Field("pad_l", "u1", 44, "Implicit columns of pad_value left of the tile."),
        Field("pad_r", "u1", 45, "Implicit columns of pad_value right of the tile."),
        Field("pad_value", "i1", 46, "Value of implicit padding (the input zero point)."),
        Field("out_zp", "i1", 47, "Output zero point: y = act(sat8(out_zp + rne(f32(f32("
              "f32(acc) * scale) / divisor))))."),
        Field("act_lo", "i1", 48, "Lower clamp of RELU / RELU6."),
        Field("act_hi", "i1", 49, "Upper clamp of RELU6."),
        Field("dil_h", "u1", 50, "Vertical kernel dilation (0 or 1: none): kernel row i reads "
              "input row y*stride_h + i*dil_h of the padded (and upsampled) input."),
        Field("dil_w", "u1", 51, "Horizontal kernel dilation (0 or 1: none)."),
        Field("ups_h", "u1", 52, "Input upsampling by zero insertion (0 or 1: none): "
              "ups_h - 1 rows of pad_value between consecutive input rows, before padding "
              "(transposed convolution, nearest resize)."),
        Field("ups_w", "u1", 53, "Input upsampling by zero insertion along columns (0 or 1: "
              "none)."),
        Field("in_scale", "<f4", 56, "float32. With fsum (ISA version 5): the input scale, "
              "each input element is dequantized as f32(f32(x - pad_value) * in_scale); "
              "finite, non-zero. 0 without fsum."),
    ),
    Opcode.POOL: (
        Field("in_addr", "<u4", 8, "ibuf address of the input tile, int8 [in_h][in_w][c]."),
        Field("out_addr", "<u4", 12, "obuf address of the int8 output [out_h][out_w][c]."),
        Field("scale", "<f4", 16, "float32. AVG_PAD / AVG: the input scale; each in-bound "
              "element contributes f32(f32(x - in_zp) * scale). GLOBAL_AVG: the whole "
              "requantization factor, y = sat8(out_zp + rne(f32(f32(acc) * scale))). "
              "MAX: 0."),
        Field("in_h", "<u2", 20, "Input tile height."),
        Field("in_w", "<u2", 22, "Input tile width."),
        Field("c", "<u2", 24, "Channels."),
        Field("kh", "u1", 26, "Window height (0 for GLOBAL_AVG)."),
        Field("kw", "u1", 27, "Window width (0 for GLOBAL_AVG)."),
        Field("stride_h", "u1", 28, "Vertical stride (0 for GLOBAL_AVG)."),
        Field("stride_w", "u1", 29, "Horizontal stride (0 for GLOBAL_AVG)."),
        Field("pad_t", "u1", 30, "Implicit padding rows above (never part of a maximum or "
              "a sum)."),
        Field("pad_b", "u1", 31, "Implicit padding rows below."),
        Field("pad_l", "u1", 32, "Implicit padding columns left."),
        Field("pad_r", "u1", 33, "Implicit padding columns right."),
        Field("in_zp", "i1", 35, "Input zero point (average modes; 0 for MAX)."),
        Field("out_zp", "i1", 36, "Output zero point (average modes; 0 for MAX)."),
        Field("out_scale", "<f4", 40, "float32. AVG_PAD / AVG: the output scale; the window "
              "mean m gives y = sat8(rne(f32(f32(m / out_scale) + f32(out_zp + 128))) - "
              "128). Must be finite and non-zero there; 0 for MAX and GLOBAL_AVG."),
    ),
    Opcode.ELTWISE: (
        Field("a_addr", "<u4", 8, "ibuf address of operand A, int8 [n]."),
        Field("b_addr", "<u4", 12, "ibuf address of operand B, int8 [n], or [b_period] "
              "with b_period > 0."),
        Field("out_addr", "<u4", 16, "obuf address of the int8 result [n]."),
        Field("n", "<u4", 20, "Elements."),
        Field("scale_a", "<f4", 24, "float32. ADD: factor of the biased operand A + 128 "
              "(s_a / s_out). MUL: the ratio f32(f32(s_a * s_b) / s_out), y = act(sat8(rne("
              "f32(f32(f32((A - a_zp) * (B - b_zp)) * scale_a) + f32(out_zp + 128))) - "
              "128)). SUB: the scale s_a of A."),
        Field("scale_b", "<f4", 28, "float32. ADD: factor of the biased operand B + 128 "
              "(s_b / s_out). SUB: the scale s_b of B. MUL: 0."),
        Field("offset", "<f4", 32, "float32. ADD: constant folding the zero points: y = "
              "act(sat8(rne(fma(A + 128, scale_a, fma(B + 128, scale_b, offset))) - 128)), "
              "each fma rounded once to float32. MUL / SUB: 0."),
        Field("act_lo", "i1", 36, "Lower clamp of RELU / RELU6."),
        Field("act_hi", "i1", 37, "Upper clamp of RELU6."),
        Field("a_zp", "i1", 38, "MUL / SUB: zero point of A (ADD: 0)."),
        Field("b_zp", "i1", 39, "MUL / SUB: zero point of B (ADD: 0)."),
        Field("out_zp", "i1", 40, "MUL / SUB: output zero point (ADD: 0)."),
        Field("out_scale", "<f4", 44, "float32. SUB: the divisor of the difference, y = "
              "act(sat8(out_zp + rne(f32(f32(va - vb) / out_scale)))) with va = "
              "f32(f32(A - a_zp) * scale_a), vb likewise; finite, non-zero (a negative one "
              "negates the result exactly). ADD, MUL: 0."),
        Field("b_period", "<u4", 48, "0: B has n elements. p > 0: B holds p elements and "
              "element i of A meets B[i % p] (a per-channel operand broadcast over the "
              "pixels of an [h][w][p] tile); n must be a multiple of p."),
    ),
    Opcode.SYNC: (),
    Opcode.END: (),
    Opcode.RESIZE: (
        Field("in_addr", "<u4", 8, "ibuf address of the input tile, int8 [in_h][in_w][c]: "
              "rows in_y0.., columns in_x0.. of the map."),
        Field("out_addr", "<u4", 12, "obuf address of the int8 output [out_h][out_w][c]: "
              "rows out_y0.., columns out_x0.. of the resized map."),
        Field("in_scale", "<f4", 16, "float32. Input scale: each input element is "
              "dequantized as f32(f32(x - in_zp) * in_scale)."),
        Field("out_scale", "<f4", 20, "float32. Output scale: y = sat8(out_zp + rne(f32(v / "
              "out_scale))) of the interpolated float32 v; finite, non-zero."),
        Field("scale_h", "<f4", 24, "float32. Vertical resize scale (the model's scale, or "
              "f32(map_out_h) / f32(map_in_h)); finite, > 0."),
        Field("scale_w", "<f4", 28, "float32. Horizontal resize scale; finite, > 0."),
        Field("in_h", "<u2", 32, "Input tile height."),
        Field("in_w", "<u2", 34, "Input tile width."),
        Field("c", "<u2", 36, "Channels."),
        Field("out_h", "<u2", 38, "Output tile height."),
        Field("out_w", "<u2", 40, "Output tile width."),
        Field("in_y0", "<u2", 42, "Map row of the tile's input row 0."),
        Field("in_x0", "<u2", 44, "Map column of the tile's input column 0."),
        Field("out_y0", "<u2", 46, "Resized-map row of the tile's output row 0."),
        Field("out_x0", "<u2", 48, "Resized-map column of the tile's output column 0."),
        Field("map_in_h", "<u2", 50, "Input map height (source coordinates are clamped to "
              "[0, map_in_h - 1])."),
        Field("map_in_w", "<u2", 52, "Input map width."),
        Field("map_out_h", "<u2", 54, "Resized map height (align_corners, "
              "pytorch_half_pixel)."),
        Field("map_out_w", "<u2", 56, "Resized map width."),
        Field("in_zp", "i1", 58, "Input zero point."),
        Field("out_zp", "i1", 59, "Output zero point."),
    ),
}

FLAG_FIELDS: dict[Opcode, tuple[FlagField, ...]] = {
    Opcode.LOAD: (
        FlagField("to", 0, 3, "Destination buffer: ibuf, wbuf or pbuf.", Buffer),
    ),
    Opcode.SAVE: (
        FlagField("from", 0, 3, "Source buffer: obuf.", Buffer),
    ),
    Opcode.CONV: (
        FlagField("act", 0, 2, "Activation: none, relu, relu6, table (256 int8 entries "
                  "after the parameter records in pbuf).", Act),
        FlagField("acc_in", 2, 1, "1: start from abuf partial sums at acc_addr, not the bias."),
        FlagField("acc_out", 3, 1, "1: write int32 partial sums to abuf at out_addr, no "
                  "requantization."),
        FlagField("fsum", 4, 1, "1 (ISA version 5): sum dequantized float32 products in "
                  "onnxruntime's ConvTranspose order (docs/isa.md, CONV fsum); records hold "
                  "(bias int32, weight scale float32, output scale float32)."),
    ),
    Opcode.POOL: (
        FlagField("mode", 0, 2, "max, avg_pad, avg, global_avg.", PoolMode),
    ),
    Opcode.ELTWISE: (
        FlagField("op", 2, 2, "Operation: add, mul, sub.", EltOp),
        FlagField("act", 0, 2, "Activation: none, relu, relu6.", Act),
    ),
    Opcode.SYNC: (),
    Opcode.END: (),
    Opcode.RESIZE: (
        FlagField("coord", 0, 2, "Coordinate transformation: half_pixel, "
                  "pytorch_half_pixel, align_corners, asymmetric.", CoordMode),
    ),
}

#: Buffers LOAD may write and SAVE may read.
LOAD_TARGETS = (Buffer.IBUF, Buffer.WBUF, Buffer.PBUF)
SAVE_SOURCES = (Buffer.OBUF,)

#: Size of one per-output-channel parameter record in pbuf: bias (int32), scale (float32),
#: divisor (float32), little-endian (ISA version 2).
PARAM_RECORD_BYTES = 12

#: Size of the int8 lookup table a CONV with ``act = TABLE`` reads in pbuf right after its
#: ``out_c`` parameter records: one entry per int8 value, indexed by ``y + 128``.
ACT_TABLE_BYTES = 256


def conv_pbuf_bytes(out_c: int, act: int) -> int:
    """Bytes of pbuf a CONV reads at ``p_addr``: its parameter records, and with
    ``act = TABLE`` the activation table after them."""
    return out_c * PARAM_RECORD_BYTES + (ACT_TABLE_BYTES if act == Act.TABLE else 0)


#: The pbuf parameter record as a numpy dtype (:data:`PARAM_RECORD_BYTES` bytes).
PARAM_RECORD_DTYPE: np.dtype = np.dtype([("bias", "<i4"), ("scale", "<f4"), ("divisor", "<f4")])


def is_float_field(f: Field) -> bool:
    """True for a float32 field (ISA version 2 requantization constants)."""
    return np.dtype(f.np_type).kind == "f"


#: Per opcode: names of its float32 payload fields (the others are integers).
FLOAT_FIELDS: dict[Opcode, frozenset[str]] = {
    op: frozenset(f.name for f in fields if is_float_field(f))
    for op, fields in PAYLOAD_FIELDS.items()
}


def _make_dtype(fields: tuple[Field, ...]) -> np.dtype:
    all_fields = HEADER_FIELDS + fields
    return np.dtype(
        {
            "names": [f.name for f in all_fields],
            "formats": [f.np_type for f in all_fields],
            "offsets": [f.offset for f in all_fields],
            "itemsize": INSN_BYTES,
        }
    )


#: The header as a structured dtype of itemsize 64 (payload not interpreted).
HEADER_DTYPE: np.dtype = _make_dtype(())

#: One structured dtype per opcode, each of itemsize 64.
OPCODE_DTYPES: dict[Opcode, np.dtype] = {op: _make_dtype(PAYLOAD_FIELDS[op]) for op in Opcode}


def used_payload_mask(op: Opcode) -> np.ndarray:
    """Boolean mask over the 64 bytes of a word: True where a field of ``op`` lives."""
    mask = np.zeros(INSN_BYTES, dtype=bool)
    for f in HEADER_FIELDS + PAYLOAD_FIELDS[op]:
        mask[f.offset : f.offset + f.size] = True
    return mask


def _check_layout() -> None:
    for op, fields in PAYLOAD_FIELDS.items():
        used = np.zeros(INSN_BYTES, dtype=int)
        for f in HEADER_FIELDS + fields:
            used[f.offset : f.offset + f.size] += 1
        if used.max() > 1:  # pragma: no cover - guards edits of the table
            raise AssertionError(f"overlapping fields in {op.name}")
    for op, flags in FLAG_FIELDS.items():
        bits = 0
        for fl in flags:
            if bits & fl.mask:  # pragma: no cover
                raise AssertionError(f"overlapping flags in {op.name}")
            bits |= fl.mask


_check_layout()
