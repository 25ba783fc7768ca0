"""Assembler of the vfpga ``.s`` text format (the syntax is specified in ``docs/isa.md``,
section "Assembly syntax"; :mod:`vfpga.backend.disasm` produces it).

A source is a sequence of lines; ``;`` starts a comment that runs to the end of the line
(outside quoted strings). A line is empty, a directive (``.hw``, ``.program``, ``.layer``,
``.tensor``, ``.hostop``, ``.ifp`` / ``.endifp``, ``.data``, ``.datasize``, ``.i8``,
``.u8``, ``.i32``, ``.f32``), a line of hex bytes (inside a ``.data`` block), or one
instruction: an optional index label ``N:`` (checked), the lowercase mnemonic, then
``key=value`` for fields of the instruction by their name in :mod:`vfpga.isa.spec`.
Float32 fields (POOL ``scale``/``out_scale``, ELTWISE ``scale_a``/``scale_b``/``offset``)
take a decimal literal, rounded to the nearest float32, or ``f32:0xHHHHHHHH`` (the exact
bits); they must be finite. Every error is an :class:`~vfpga.errors.AsmError` whose
message starts with ``file:line:``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vfpga.backend.binary import (
    BEFORE_FIRST_LAYER,
    DTYPE_BYTES,
    IFP_BUFFERS,
    LAYER_KINDS,
    MAX_HOST_IO,
    MAX_RANK,
    TENSOR_DTYPES,
    TENSOR_LAYOUTS,
    TENSOR_ROLES,
    HostOp,
    Layer,
    Tensor,
    VfbFile,
    empty_dispatch,
    empty_ifps,
    validate,
)
from vfpga.errors import AsmError, BinaryFormatError
from vfpga.hw.config import (
    DEFAULT_HW,
    ISA_VERSION,
    HardwareConfig,
    HardwareConfigError,
    load_hw,
)
from vfpga.isa.limits import ILLEGAL_DEPS, MAX_CORES
from vfpga.isa.spec import (
    DEP_NAMES,
    FLAG_FIELDS,
    FLOAT_FIELDS,
    INSN_BYTES,
    LOAD_TARGETS,
    MODULE_OF,
    OPCODE_DTYPES,
    PAYLOAD_FIELDS,
    SAVE_SOURCES,
    FlagField,
    Opcode,
)

#: Mnemonic -> opcode.
MNEMONICS: dict[str, Opcode] = {op.name.lower(): op for op in Opcode}


_LABEL_RE = re.compile(r"(\d+):")
_HEX_RE = re.compile(r"(?:[0-9a-fA-F]{2})+")
_INT_RE = re.compile(r"-?(?:0[xX][0-9a-fA-F]+|[0-9]+)")


class _Err(Exception):
    """Internal: an error at the current line (the assembler adds ``file:line``)."""


# ------------------------------------------------------------------ lexing
def tokenize(line: str) -> list[str]:
    """Split a source line into tokens. Tokens are separated by blanks; a ``"`` string
    (JSON escapes) or a ``{...}`` / ``[...]`` group (JSON) keeps its blanks inside one
    token; ``;`` outside them starts a comment."""
    if '"' not in line and "{" not in line and "[" not in line:
        if "}" in line or "]" in line:
            code = line.split(";", 1)[0]
            if "}" in code or "]" in code:
                raise _Err(f"unbalanced '{'}' if '}' in code else ']'}'")
        return line.split(";", 1)[0].split()
    tokens: list[str] = []
    cur: list[str] = []
    depth = 0
    in_str = False
    esc = False
    for ch in line:
        if in_str:
            cur.append(ch)
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
            cur.append(ch)
        elif ch in "{[":
            depth += 1
            cur.append(ch)
        elif ch in "}]":
            if depth == 0:
                raise _Err(f"unbalanced '{ch}'")
            depth -= 1
            cur.append(ch)
        elif depth:
            cur.append(ch)
        elif ch == ";":
            break
        elif ch.isspace():
            if cur:
                tokens.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
    if in_str:
        raise _Err("unterminated string")
    if depth:
        raise _Err("unbalanced '{' or '['")
    if cur:
        tokens.append("".join(cur))
    return tokens


def parse_int(tok: str, lo: int, hi: int, what: str) -> int:
    """A decimal or ``0x`` hexadecimal integer in ``[lo, hi]``."""
    if tok.isdigit() and tok.isascii():
        v = int(tok)
    elif not _INT_RE.fullmatch(tok):
        raise _Err(f"{what}: '{tok}' is not an integer (decimal or 0x hex)")
    else:
        v = int(tok, 16 if "x" in tok.lower() else 10)
    if not lo <= v <= hi:
        raise _Err(f"{what}={v} is out of range [{lo}, {hi}]")
    return v


def parse_float32(tok: str, what: str) -> float:
    """A float32 value: a decimal literal, or ``f32:0xHHHHHHHH`` (the raw bits)."""
    if tok.startswith("f32:"):
        bits = parse_int(tok[4:], 0, 0xFFFFFFFF, what)
        return float(np.array([bits], np.uint32).view(np.float32)[0])
    try:
        v = float(tok)
    except ValueError:
        raise _Err(f"{what}: '{tok}' is not a number") from None
    with np.errstate(over="ignore"):
        f = np.float32(v)
    if np.isfinite(v) and not np.isfinite(f):
        raise _Err(f"{what}={tok} does not fit a float32")
    return float(f)


def parse_finite_float32(tok: str, what: str) -> float:
    """A finite float32 value (as :func:`parse_float32`; NaN and infinities are errors)."""
    v = parse_float32(tok, what)
    if not np.isfinite(v):
        raise _Err(f"{what}={tok} is not finite (float32 fields and .f32 data must be "
                   "finite; the machine faults on a non-finite requantization constant)")
    return v


def parse_name(tok: str, what: str) -> str:
    """A name: a bare token or a JSON string."""
    if tok.startswith('"'):
        try:
            v = json.loads(tok)
        except json.JSONDecodeError as exc:
            raise _Err(f"{what}: bad string {tok}: {exc.msg}") from None
        if not isinstance(v, str):
            raise _Err(f"{what}: expected a string")
        return v
    return tok


def parse_range(tok: str, hi: int, what: str) -> tuple[int, int]:
    """``a:b`` (two integers)."""
    parts = tok.split(":")
    if len(parts) != 2:
        raise _Err(f"{what}: expected FROM:TO, got '{tok}'")
    return parse_int(parts[0], 0, hi, what), parse_int(parts[1], 0, hi, what)


def _split_kv(tokens: list[str]) -> tuple[list[str], dict[str, str]]:
    pos: list[str] = []
    kv: dict[str, str] = {}
    for t in tokens:
        key, eq, value = t.partition("=")
        if eq and key.isidentifier() and key.isascii():
            if key in kv:
                raise _Err(f"'{key}' given twice")
            kv[key] = value
        else:
            if kv:
                raise _Err(f"'{t}' is not of the form key=value")
            pos.append(t)
    return pos, kv


def _check_keys(kv: dict[str, str], allowed: tuple[str, ...], what: str) -> None:
    for k in kv:
        if k not in allowed:
            raise _Err(f"{what} has no key '{k}' (keys: {', '.join(allowed)})")


def _list(tok: str) -> list[str]:
    return [] if tok in ("-", "") else [t for t in tok.split(",") if t != ""]


# ------------------------------------------------------------- instructions
@dataclass(frozen=True)
class _OpSpec:
    op: Opcode
    ranges: dict[str, tuple[int, int]]
    flags: dict[str, FlagField]
    floats: tuple[str, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return ("core", "layer", "deps", *self.flags,
                *(f.name for f in PAYLOAD_FIELDS[self.op]))


def _op_specs() -> dict[Opcode, _OpSpec]:
    specs = {}
    for op in Opcode:
        ranges = {}
        for f in PAYLOAD_FIELDS[op]:
            if f.name in FLOAT_FIELDS[op]:
                continue
            info = np.iinfo(np.dtype(f.np_type))
            ranges[f.name] = (int(info.min), int(info.max))
        specs[op] = _OpSpec(op, ranges, {ff.name: ff for ff in FLAG_FIELDS[op]},
                            tuple(sorted(FLOAT_FIELDS[op])))
    return specs


_SPECS = _op_specs()


def _flag_names(op: Opcode, ff: FlagField) -> dict[str, int]:
    assert ff.enum is not None
    allowed = list(ff.enum)
    if op is Opcode.LOAD:
        allowed = list(LOAD_TARGETS)
    elif op is Opcode.SAVE:
        allowed = list(SAVE_SOURCES)
    return {e.name.lower(): int(e) for e in allowed}


#: Symbolic values of every enumerated flag field: (opcode, field) -> {name: value}.
_FLAG_NAMES: dict[tuple[Opcode, str], dict[str, int]] = {
    (op, ff.name): _flag_names(op, ff) for op in Opcode for ff in FLAG_FIELDS[op]
    if ff.enum is not None
}


def _flag_value(op: Opcode, ff: FlagField, tok: str) -> int:
    if ff.enum is None:
        return parse_int(tok, 0, (1 << ff.width) - 1, ff.name)
    names = _FLAG_NAMES[op, ff.name]
    v = names.get(tok)
    if v is None:
        v = names.get(tok.lower())
        if v is None:
            raise _Err(f"{op.name.lower()}: '{ff.name}={tok}' is not one of "
                       f"{', '.join(names)}")
    return v


def _deps_value(op: Opcode, tok: str) -> int:
    bits = 0
    for name in _list(tok):
        if name not in DEP_NAMES:
            raise _Err(f"unknown dependency '{name}' (known: {', '.join(DEP_NAMES)}, or '-' "
                       "for none)")
        bits |= DEP_NAMES[name]
    bad = bits & ILLEGAL_DEPS[MODULE_OF[op]]
    if bad:
        names = [n for n, d in DEP_NAMES.items() if bad & d]
        raise _Err(f"{op.name.lower()} runs on the {MODULE_OF[op].name} module, which cannot "
                   f"use {', '.join(names)}")
    return bits


@dataclass
class _Insn:
    op: Opcode
    values: dict[str, int | float]
    flags: int
    line: int
    layer_from_ifp: int | None  # index into the IFP list when layer is inherited


# ---------------------------------------------------------------- assembler
@dataclass
class _PendingIfp:
    line: int
    layer_ref: str
    values: dict[str, int]
    insn_offset: int
    insn_count: int | None


@dataclass
class _PendingHostOp:
    line: int
    name: str
    op_type: str
    after_ref: str
    in_refs: list[str]
    out_refs: list[str]
    attrs: dict[str, Any]


@dataclass
class _PendingLayer:
    line: int
    layer: Layer
    ifps_given: bool


@dataclass
class _State:
    source: str
    hw: HardwareConfig | None
    hw_line: int = 0
    hw_name: str | None = None
    program: dict[str, int] | None = None
    program_line: int = 0
    layers: list[_PendingLayer] = field(default_factory=list)
    tensors: list[Tensor] = field(default_factory=list)
    tensor_lines: list[int] = field(default_factory=list)
    host_ops: list[_PendingHostOp] = field(default_factory=list)
    ifps: list[_PendingIfp] = field(default_factory=list)
    open_ifp: int | None = None
    dispatch: list[tuple[int, int, int]] = field(default_factory=list)
    insns: list[_Insn] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    written: bytearray = field(default_factory=bytearray)
    data_cursor: int | None = None  # not None inside a .data block
    data_size: int | None = None
    data_size_line: int = 0


_IFP_KEYS = ("layer", "candidate", "core", "w", "h", "c", "latency", *IFP_BUFFERS, "insns")
_TENSOR_KEYS = ("role", "dtype", "layout", "shape", "offset", "size", "scale", "zp",
                "onnx_shape")
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF
_U64 = (1 << 64) - 1


class Assembler:
    """Assembles one source text. Use :func:`assemble`."""

    def __init__(self, source: str, hw: HardwareConfig | None) -> None:
        self.st = _State(source, hw)
        self.line = 0

    # ---------------------------------------------------------------- driver
    def run(self, text: str) -> VfbFile:
        for self.line, raw in enumerate(text.splitlines(), start=1):
            try:
                self._line(raw)
            except _Err as exc:
                raise AsmError(f"{self.st.source}:{self.line}: {exc}") from None
        self.line = len(text.splitlines()) + 1
        try:
            return self._finish()
        except _Err as exc:
            raise AsmError(f"{self.st.source}:{self.line}: {exc}") from None

    def _line(self, raw: str) -> None:
        tokens = tokenize(raw)
        if not tokens:
            return
        head = tokens[0]
        if head.startswith("."):
            if head not in (".i8", ".u8", ".i32", ".f32") and head != ".data":
                self.st.data_cursor = None
            self._directive(head, tokens[1:])
            return
        if self.st.data_cursor is not None:
            try:
                raw_bytes = bytes.fromhex("".join(tokens))
            except ValueError:
                pass
            else:
                self._put(raw_bytes)
                return
        self.st.data_cursor = None
        m = _LABEL_RE.fullmatch(head)
        if m:
            want = int(m.group(1))
            if want != len(self.st.insns):
                raise _Err(f"instruction label {want}: is not this instruction's index "
                           f"{len(self.st.insns)} (labels are optional; renumber or remove "
                           "them)")
            tokens = tokens[1:]
            if not tokens:
                raise _Err("label without an instruction")
            head = tokens[0]
        self._insn(head, tokens[1:])

    # ----------------------------------------------------------- instructions
    def _insn(self, mnemonic: str, tokens: list[str]) -> None:
        op = MNEMONICS.get(mnemonic)
        if op is None:
            if _HEX_RE.fullmatch(mnemonic):
                raise _Err(f"hex data line outside a .data block ('{mnemonic}')")
            raise _Err(f"unknown mnemonic '{mnemonic}' (known: {', '.join(MNEMONICS)})")
        spec = _SPECS[op]
        pos, kv = _split_kv(tokens)
        if pos:
            raise _Err(f"{mnemonic}: '{pos[0]}' is not of the form field=value")
        values: dict[str, int | float] = {}
        flags = 0
        layer_from_ifp = None
        for key, val in kv.items():
            if key == "core":
                values["core"] = parse_int(val, 0, MAX_CORES - 1, "core")
            elif key == "layer":
                values["layer"] = parse_int(val, 0, _U16, "layer")
            elif key == "deps":
                values["deps"] = _deps_value(op, val)
            elif key in spec.flags:
                ff = spec.flags[key]
                flags |= _flag_value(op, ff, val) << ff.shift
            elif key in spec.ranges:
                lo, hi = spec.ranges[key]
                values[key] = parse_int(val, lo, hi, f"{mnemonic}: field '{key}'")
            elif key in spec.floats:
                values[key] = parse_finite_float32(val, f"{mnemonic}: field '{key}'")
            else:
                raise _Err(f"{mnemonic} has no field '{key}' (fields: {', '.join(spec.keys)})")
        if self.st.open_ifp is not None:
            ifp = self.st.ifps[self.st.open_ifp]
            values.setdefault("core", ifp.values["core"])
            if "layer" not in values:
                layer_from_ifp = self.st.open_ifp
        self.st.insns.append(_Insn(op, values, flags, self.line, layer_from_ifp))

    # ------------------------------------------------------------- directives
    def _directive(self, name: str, tokens: list[str]) -> None:
        handler = getattr(self, "_d_" + name[1:], None)
        if handler is None:
            raise _Err(f"unknown directive '{name}' (known: .hw, .program, .layer, .tensor, "
                       ".hostop, .ifp, .endifp, .dispatch, .data, .datasize, .i8, .u8, .i32, "
                       ".f32)")
        handler(tokens)

    def _d_dispatch(self, tokens: list[str]) -> None:
        """``.dispatch core=C ENTRY...`` with entries ``ifp:N``, ``sync:L`` and ``end``,
        appended to the dispatch table in order."""
        if not tokens or not tokens[0].startswith("core="):
            raise _Err(".dispatch takes core=C then entries ifp:N, sync:LAYER, end")
        core = parse_int(tokens[0][5:], 0, MAX_CORES - 1, "core")
        if len(tokens) == 1:
            raise _Err(".dispatch needs at least one entry (ifp:N, sync:LAYER or end)")
        for tok in tokens[1:]:
            if tok == "end":
                self.st.dispatch.append((core, 2, 0))
                continue
            kind, _, val = tok.partition(":")
            if kind not in ("ifp", "sync") or not val:
                raise _Err(f".dispatch: '{tok}' is not ifp:N, sync:LAYER or end")
            self.st.dispatch.append((core, 0 if kind == "ifp" else 1,
                                     parse_int(val, 0, _U32, kind)))

    def _d_hw(self, tokens: list[str]) -> None:
        if len(tokens) != 1:
            raise _Err(".hw takes one hardware preset name or configuration file")
        if self.st.hw_name is not None:
            raise _Err(f".hw given twice (first on line {self.st.hw_line})")
        self.st.hw_name = parse_name(tokens[0], ".hw")
        self.st.hw_line = self.line

    def _d_program(self, tokens: list[str]) -> None:
        if self.st.program is not None:
            raise _Err(f".program given twice (first on line {self.st.program_line})")
        pos, kv = _split_kv(tokens)
        if pos:
            raise _Err(f".program: '{pos[0]}' is not of the form key=value")
        _check_keys(kv, ("ddr_size", "data_offset", "cores", "isa"), ".program")
        prog: dict[str, int] = {}
        for k in ("ddr_size", "data_offset"):
            if k in kv:
                prog[k] = parse_int(kv[k], 0, _U64, k)
        if "cores" in kv:
            prog["cores"] = parse_int(kv["cores"], 0, MAX_CORES, "cores")
        if "isa" in kv:
            isa = parse_int(kv["isa"], 0, _U32, "isa")
            if isa != ISA_VERSION:
                raise _Err(f"isa={isa}: this assembler produces ISA version {ISA_VERSION}")
        self.st.program = prog
        self.st.program_line = self.line

    def _d_layer(self, tokens: list[str]) -> None:
        pos, kv = _split_kv(tokens)
        if len(pos) != 1:
            raise _Err(".layer takes a name then kind=... [macs=N] [ifps=FIRST:COUNT]")
        _check_keys(kv, ("kind", "macs", "ifps"), ".layer")
        if "kind" not in kv:
            raise _Err(f".layer needs kind= (one of {', '.join(LAYER_KINDS)})")
        if kv["kind"] not in LAYER_KINDS:
            raise _Err(f"unknown layer kind '{kv['kind']}' (known: {', '.join(LAYER_KINDS)})")
        layer = Layer(parse_name(pos[0], ".layer"), kv["kind"])
        if "macs" in kv:
            layer.macs = parse_int(kv["macs"], 0, _U64, "macs")
        if "ifps" in kv:
            layer.first_ifp, layer.ifp_count = parse_range(kv["ifps"], _U32, "ifps")
        self.st.layers.append(_PendingLayer(self.line, layer, "ifps" in kv))

    def _d_tensor(self, tokens: list[str]) -> None:
        pos, kv = _split_kv(tokens)
        if len(pos) != 1:
            raise _Err(".tensor takes a name then role= dtype= layout= shape= offset= ...")
        _check_keys(kv, _TENSOR_KEYS, ".tensor")
        for key, allowed in (("role", TENSOR_ROLES), ("dtype", TENSOR_DTYPES),
                             ("layout", TENSOR_LAYOUTS)):
            if key not in kv:
                raise _Err(f".tensor needs {key}= (one of {', '.join(allowed)})")
            if kv[key] not in allowed:
                raise _Err(f"unknown tensor {key} '{kv[key]}' (known: {', '.join(allowed)})")
        if "shape" not in kv or "offset" not in kv:
            raise _Err(".tensor needs shape= (e.g. 1x3x224x224, or - for a scalar) and offset=")
        dims = [] if kv["shape"] == "-" else kv["shape"].split("x")
        if len(dims) > MAX_RANK:
            raise _Err(f"shape '{kv['shape']}' has more than {MAX_RANK} dimensions")
        shape = tuple(parse_int(d, 0, _U32, "shape") for d in dims)
        offset = parse_int(kv["offset"], 0, _U64, "offset")
        if "size" in kv:
            size = parse_int(kv["size"], 0, _U64, "size")
        else:
            size = int(np.prod(shape, dtype=np.int64)) * DTYPE_BYTES[kv["dtype"]]
        scale = parse_float32(kv["scale"], "scale") if "scale" in kv else 1.0
        zp = parse_int(kv["zp"], -(1 << 31), (1 << 31) - 1, "zp") if "zp" in kv else 0
        onnx_shape = (tuple(parse_int(d, 1, _U32, "onnx_shape")
                            for d in kv["onnx_shape"].split("x")) if "onnx_shape" in kv else None)
        self.st.tensors.append(Tensor(parse_name(pos[0], ".tensor"), kv["role"], kv["dtype"],
                                      kv["layout"], shape, offset, size, scale, zp, onnx_shape))
        self.st.tensor_lines.append(self.line)

    def _d_hostop(self, tokens: list[str]) -> None:
        pos, kv = _split_kv(tokens)
        if len(pos) != 1:
            raise _Err(".hostop takes a name then op= after= in= out= [attrs=JSON]")
        _check_keys(kv, ("op", "after", "in", "out", "attrs"), ".hostop")
        for k in ("op", "after"):
            if k not in kv:
                raise _Err(f".hostop needs {k}=")
        attrs: dict[str, Any] = {}
        if "attrs" in kv:
            try:
                attrs = json.loads(kv["attrs"])
            except json.JSONDecodeError as exc:
                raise _Err(f"attrs: not JSON: {exc.msg}") from None
            if not isinstance(attrs, dict):
                raise _Err("attrs must be a JSON object {...}")
        ins, outs = _list(kv.get("in", "-")), _list(kv.get("out", "-"))
        for key, refs in (("in", ins), ("out", outs)):
            if len(refs) > MAX_HOST_IO:
                raise _Err(f"{key}=: at most {MAX_HOST_IO} tensors")
        self.st.host_ops.append(_PendingHostOp(
            self.line, parse_name(pos[0], ".hostop"), parse_name(kv["op"], "op"), kv["after"],
            ins, outs, attrs))

    def _d_ifp(self, tokens: list[str]) -> None:
        if self.st.open_ifp is not None:
            raise _Err(f".ifp inside the .ifp block opened on line "
                       f"{self.st.ifps[self.st.open_ifp].line} (missing .endifp)")
        pos, kv = _split_kv(tokens)
        if pos:
            raise _Err(f".ifp: '{pos[0]}' is not of the form key=value")
        _check_keys(kv, _IFP_KEYS, ".ifp")
        if "layer" not in kv:
            raise _Err(".ifp needs layer= (a layer name or index)")
        v: dict[str, int] = {}
        v["candidate"] = parse_int(kv.get("candidate", "0"), 0, _U16, "candidate")
        v["core"] = parse_int(kv.get("core", "0"), 0, MAX_CORES - 1, "core")
        for dim in ("w", "h", "c"):
            v[dim + "0"], v[dim + "1"] = parse_range(kv.get(dim, "0:0"), _U16, dim)
            if v[dim + "0"] > v[dim + "1"]:
                raise _Err(f"{dim}={kv[dim]}: the start is after the end")
        v["latency"] = parse_int(kv.get("latency", "0"), 0, _U64, "latency")
        for b in IFP_BUFFERS:
            v[b] = parse_int(kv.get(b, "0"), 0, _U32, b)
        if "insns" in kv:
            off, count = parse_range(kv["insns"], _U32, "insns")
            self.st.ifps.append(_PendingIfp(self.line, kv["layer"], v, off, count))
        else:
            self.st.ifps.append(_PendingIfp(self.line, kv["layer"], v, len(self.st.insns), None))
            self.st.open_ifp = len(self.st.ifps) - 1

    def _d_endifp(self, tokens: list[str]) -> None:
        if tokens:
            raise _Err(".endifp takes no arguments")
        if self.st.open_ifp is None:
            raise _Err(".endifp without an open .ifp block")
        ifp = self.st.ifps[self.st.open_ifp]
        ifp.insn_count = len(self.st.insns) - ifp.insn_offset
        self.st.open_ifp = None

    def _d_data(self, tokens: list[str]) -> None:
        if len(tokens) != 1:
            raise _Err(".data takes one offset (bytes from the start of the DATA blob)")
        self.st.data_cursor = parse_int(tokens[0], 0, _U64, ".data offset")

    def _d_datasize(self, tokens: list[str]) -> None:
        if len(tokens) != 1:
            raise _Err(".datasize takes one size in bytes")
        if self.st.data_size is not None:
            raise _Err(f".datasize given twice (first on line {self.st.data_size_line})")
        self.st.data_size = parse_int(tokens[0], 0, _U64, ".datasize")
        self.st.data_size_line = self.line

    def _values(self, tokens: list[str], lo: int, hi: int, what: str) -> list[int]:
        vals = [t for tok in tokens for t in tok.split(",") if t]
        if not vals:
            raise _Err(f"{what} needs at least one value")
        return [parse_int(t, lo, hi, what) for t in vals]

    def _d_i8(self, tokens: list[str]) -> None:
        self._put(np.array(self._values(tokens, -128, 127, ".i8"), np.int8).tobytes())

    def _d_u8(self, tokens: list[str]) -> None:
        self._put(np.array(self._values(tokens, 0, 255, ".u8"), np.uint8).tobytes())

    def _d_i32(self, tokens: list[str]) -> None:
        vals = self._values(tokens, -(1 << 31), (1 << 31) - 1, ".i32")
        self._put(np.array(vals, "<i4").tobytes())

    def _d_f32(self, tokens: list[str]) -> None:
        """``.f32 V,V,...``: little-endian float32 values (decimal literals rounded to the
        nearest float32, or ``f32:0xHHHHHHHH`` bits, the only way to write a non-finite
        value, e.g. to test the machine's invalid-parameter fault)."""
        vals = [t for tok in tokens for t in tok.split(",") if t]
        if not vals:
            raise _Err(".f32 needs at least one value")
        out = [parse_float32(t, ".f32") if t.startswith("f32:")
               else parse_finite_float32(t, ".f32") for t in vals]
        self._put(np.array(out, "<f4").tobytes())

    def _put(self, raw: bytes) -> None:
        st = self.st
        if st.data_cursor is None:
            raise _Err("data outside a .data block (start one with .data OFFSET)")
        start, end = st.data_cursor, st.data_cursor + len(raw)
        if end > len(st.data):
            grow = end - len(st.data)
            st.data += bytes(grow)
            st.written += bytes(grow)
        if any(st.written[start:end]):
            first = start + next(i for i, b in enumerate(st.written[start:end]) if b)
            raise _Err(f"data byte {first} is written twice")
        st.data[start:end] = raw
        st.written[start:end] = b"\1" * len(raw)
        st.data_cursor = end

    # ----------------------------------------------------------------- finish
    def _resolve_layer(self, ref: str, line: int, names: dict[str, list[int]]) -> int:
        self.line = line
        n = len(self.st.layers)
        if not ref.startswith('"') and _INT_RE.fullmatch(ref):
            idx = parse_int(ref, 0, _U32, "layer")
            if idx >= n:
                raise _Err(f"layer index {idx} is not defined ({n} .layer directives)")
            return idx
        name = parse_name(ref, "layer")
        hits = names.get(name, [])
        if not hits:
            raise _Err(f"unknown layer '{name}' (define it with .layer)")
        if len(hits) > 1:
            raise _Err(f"layer name '{name}' is ambiguous (layers {hits}); use the index")
        return hits[0]

    def _resolve_tensor(self, ref: str, line: int, names: dict[str, list[int]]) -> int:
        self.line = line
        n = len(self.st.tensors)
        if not ref.startswith('"') and _INT_RE.fullmatch(ref):
            idx = parse_int(ref, 0, _U32, "tensor")
            if idx >= n:
                raise _Err(f"tensor index {idx} is not defined ({n} .tensor directives)")
            return idx
        name = parse_name(ref, "tensor")
        hits = names.get(name, [])
        if not hits:
            raise _Err(f"unknown tensor '{name}' (define it with .tensor)")
        if len(hits) > 1:
            raise _Err(f"tensor name '{name}' is ambiguous (tensors {hits}); use the index")
        return hits[0]

    def _finish(self) -> VfbFile:
        st = self.st
        if st.open_ifp is not None:
            raise _Err(f"the .ifp block opened on line {st.ifps[st.open_ifp].line} has no "
                       ".endifp")
        hw = st.hw
        if hw is None:
            name = st.hw_name or DEFAULT_HW
            self.line = st.hw_line
            try:
                hw = load_hw(name)
            except HardwareConfigError as exc:
                raise _Err(f"{exc} (pass --hw PRESET|FILE to choose the hardware)") from None

        layer_names: dict[str, list[int]] = {}
        for i, pl in enumerate(st.layers):
            layer_names.setdefault(pl.layer.name, []).append(i)
        tensor_names: dict[str, list[int]] = {}
        for i, t in enumerate(st.tensors):
            tensor_names.setdefault(t.name, []).append(i)

        ifps = empty_ifps(len(st.ifps))
        for i, p in enumerate(st.ifps):
            rec = ifps[i]
            rec["layer"] = self._resolve_layer(p.layer_ref, p.line, layer_names)
            for k, v in p.values.items():
                rec[k] = v
            rec["insn_offset"] = p.insn_offset
            rec["insn_count"] = p.insn_count or 0
            if p.insn_offset + (p.insn_count or 0) > len(st.insns):
                raise _Err(f"insns={p.insn_offset}:{p.insn_count} extends past the last "
                           f"instruction ({len(st.insns)} instructions)")
        layers = []
        for i, pl in enumerate(st.layers):
            layer = pl.layer
            if not pl.ifps_given:
                own = np.flatnonzero(ifps["layer"] == i)
                if own.size:
                    if own[-1] - own[0] + 1 != own.size:
                        self.line = pl.line
                        raise _Err(f"the IFPs of layer '{layer.name}' ({own.tolist()}) are not "
                                   "consecutive in the IFP table; give ifps=FIRST:COUNT")
                    layer.first_ifp, layer.ifp_count = int(own[0]), int(own.size)
            layers.append(layer)
        host_ops = []
        for h in st.host_ops:
            after = (BEFORE_FIRST_LAYER if h.after_ref == "-"
                     else self._resolve_layer(h.after_ref, h.line, layer_names))
            host_ops.append(HostOp(
                h.name, h.op_type, after,
                tuple(self._resolve_tensor(r, h.line, tensor_names) for r in h.in_refs),
                tuple(self._resolve_tensor(r, h.line, tensor_names) for r in h.out_refs),
                h.attrs))

        for insn in st.insns:
            if insn.layer_from_ifp is not None:
                insn.values["layer"] = int(ifps["layer"][insn.layer_from_ifp])
        text = self._encode()

        data = bytes(st.data)
        if st.data_size is not None:
            if st.data_size < len(data):
                self.line = st.data_size_line
                raise _Err(f".datasize {st.data_size} is smaller than the {len(data)} data bytes "
                           "given")
            data += bytes(st.data_size - len(data))
        prog = st.program or {}
        self.line = st.program_line
        data_offset = prog.get("data_offset", 0)
        if "ddr_size" in prog:
            ddr_size = prog["ddr_size"]
        else:
            end = max([data_offset + len(data)] + [t.ddr_offset + t.size for t in st.tensors])
            ddr_size = -(-end // 64) * 64
        if "cores" in prog:
            cores = prog["cores"]
        else:
            used = [int(i.values.get("core", 0)) for i in st.insns]
            used += [int(c) for c in ifps["core"]]
            cores = max(used, default=0) + 1
        dispatch = empty_dispatch(len(st.dispatch))
        if st.dispatch:
            dispatch["core"], dispatch["kind"], dispatch["arg"] = zip(*st.dispatch, strict=True)
        vfb = VfbFile.for_hw(hw, ddr_size=ddr_size, data_offset=data_offset, num_cores=cores,
                             text=text, ifps=ifps, layers=layers, tensors=st.tensors,
                             host_ops=host_ops, data=data, dispatch=dispatch)
        try:
            validate(vfb, st.source)
        except BinaryFormatError as exc:
            raise AsmError(str(exc)) from None
        return vfb

    def _encode(self) -> bytes:
        insns = self.st.insns
        words = np.zeros((len(insns), INSN_BYTES), np.uint8)
        ops = np.array([int(i.op) for i in insns], dtype=np.int64)
        for op in Opcode:
            idx = np.flatnonzero(ops == int(op))
            if not idx.size:
                continue
            sel = [insns[i] for i in idx.tolist()]
            arr = np.zeros(len(sel), OPCODE_DTYPES[op])
            arr["opcode"] = int(op)
            for name in ("core", "layer", "deps", *(f.name for f in PAYLOAD_FIELDS[op])):
                arr[name] = [i.values.get(name, 0) for i in sel]
            arr["flags"] = [i.flags for i in sel]
            words[idx] = arr.view(np.uint8).reshape(-1, INSN_BYTES)
        return words.tobytes()


def assemble(text: str, source: str = "<string>", hw: HardwareConfig | None = None) -> VfbFile:
    """Assemble the ``.s`` source ``text`` into a :class:`VfbFile`.

    ``source`` names the text in error messages. ``hw`` overrides the source's ``.hw``
    directive; without either, the ``pool16`` preset is used. Raises
    :class:`~vfpga.errors.AsmError` (``file:line: what is wrong``).
    """
    return Assembler(source, hw).run(text)


def assemble_file(path: str | os.PathLike[str], hw: HardwareConfig | None = None) -> VfbFile:
    """Assemble the ``.s`` file ``path`` (see :func:`assemble`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise AsmError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise AsmError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return assemble(text, str(path), hw)
