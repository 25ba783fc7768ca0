"""The ``isa`` dialect: one op per instruction of the vfpga ISA (docs/isa.md is the
normative text; the field table is :mod:`vfpga.isa.spec`).

Every op carries the fields of its instruction word as properties named like the spec
fields and the assembly keywords: the payload fields, the flag sub-fields (``act``,
``mode``, ``to``, ``from``, ``op``, ``acc_in``, ``acc_out``), the header fields ``core``
and ``layer``, and ``deps``, the dependency-token bits as a list of names. Integer fields
are ``i64`` attributes; the float32 requantization constants of ISA version 2 (POOL
``scale``/``out_scale``, ELTWISE ``scale_a``/``scale_b``/``offset``) are ``f32`` float
attributes holding the exact float32 value. A field that is absent is 0, exactly as an
omitted field of the assembler or of :func:`vfpga.isa.codec.encode_batch` (so every field
equal to 0 is left out, which keeps the IR small and the printed form canonical; a
float field of -0.0 is kept). Inside an ``ifp.package`` the header fields ``core`` and
``layer`` are absent: the linker fills them in from the package.

Custom format (one instruction per line, like the assembly of docs/isa.md section 6)::

    isa.load to=wbuf ddr=4096 n0=1 n1=1 n2=288 deps [wait_next]
    isa.conv act=relu w_addr=0 in_h=10 in_w=10 in_c=8 out_c=16 groups=1 kh=3 kw=3 stride_h=1
        stride_w=1 out_zp=-5 act_lo=-5 act_hi=127 deps [wait_prev, signal_next]
    isa.save from=obuf ddr=0 n0=8 n1=8 n2=16 stride0=128 stride1=16 deps [wait_prev]
    isa.sync core=1 layer=3

(each op prints on one line). Symbolic flag fields print as their assembly names
(``to=pbuf``, ``act=relu6``, ``mode=global_avg``, ``op=add``; ``to`` and ``mode`` are
printed even when 0); ``deps [...]`` is omitted when empty. Float fields print as the
shortest decimal that reads back to the same float32, always with a ``.`` (``scale=0.1``,
``offset=-3.0``, ``scale=1.0e-45``), so the text round-trips bit for bit; the parser
rounds any decimal to the nearest float32 and reads a hexadecimal integer as the raw
float32 bits (``0x3DCCCCCD``, as MLIR does for float attributes).

**Verification** (:meth:`IsaOp.verify_`): every integer field is in the range of its numpy
type in :data:`vfpga.isa.spec.OPCODE_DTYPES` (``core`` below 64), every float field is a
finite ``f32`` value (a non-finite constant would fault on the machine), POOL's float
fields and zero points are 0 for max pooling, ``out_scale`` is non-zero for the average
modes and 0 for global_avg, symbolic flags hold one of
their values (``to`` one of ibuf/wbuf/pbuf, ``from`` obuf), the dependency bits are legal
for the op's module (LOAD: no ``*_prev``; SAVE: no ``*_next``; SYNC/END: none), and the
shape fields are consistent (boxes non-empty, kernel 1..11, strides >= 1, channels
divisible by groups, a non-empty output, the GLOBAL_AVG window fields 0, 4-byte aligned
int32 buffers), and an instruction inside an ``ifp.package`` has no ``core``/``layer``.
The ops verify with one fused check instead of xDSL's generic IRDL property walk: a
ResNet-50 module holds ~93k of them and the generic walk costs ~10 us per op.

Encoding is never done here: :func:`op_to_fields` gives the ``(Opcode, fields)`` pairs that
:func:`vfpga.isa.codec.encode_batch` encodes.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Iterable, Mapping
from typing import ClassVar, cast

import numpy as np
from xdsl.dialects.builtin import (
    UNKNOWN_LOC,
    ArrayAttr,
    Float32Type,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    StringAttr,
    f32,
)
from xdsl.ir import Attribute, Dialect, Operation
from xdsl.irdl import IRDLOperation, irdl_op_definition, opt_prop_def
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from vfpga.isa.codec import decode
from vfpga.isa.effects import out_hw, resize_geometry_problem, written_range
from vfpga.isa.float32 import format_f32
from vfpga.isa.limits import DEP_BITS, ILLEGAL_DEPS, MAX_CORES, MAX_KERNEL
from vfpga.isa.spec import (
    DEP_NAMES,
    FLAG_FIELDS,
    FLOAT_FIELDS,
    LOAD_TARGETS,
    MODULE_OF,
    OPCODE_DTYPES,
    PAYLOAD_FIELDS,
    SAVE_SOURCES,
    Buffer,
    EltOp,
    FieldDict,
    Opcode,
    PoolMode,
)

I64 = IntegerType(64)
MAX_CORE = MAX_CORES - 1
"""Highest logical core index (6-bit core field of the dispatcher)."""

HEADER_NAMES: tuple[str, ...] = ("core", "layer")
"""Header fields an op may carry (absent inside an ``ifp.package``)."""


def _bounds(op: Opcode) -> dict[str, tuple[int, int]]:
    dt = OPCODE_DTYPES[op]
    out: dict[str, tuple[int, int]] = {"core": (0, MAX_CORE), "layer": (0, 65535)}
    for ff in FLAG_FIELDS[op]:
        out[ff.name] = (0, (1 << ff.width) - 1)
    for f in PAYLOAD_FIELDS[op]:
        if f.name in FLOAT_FIELDS[op]:
            continue
        info = np.iinfo(dt[f.name])
        out[f.name] = (int(info.min), int(info.max))
    return out


#: Per opcode: every integer field (header, flags, payload) -> inclusive (min, max). The
#: float32 fields (:data:`vfpga.isa.spec.FLOAT_FIELDS`) are not listed.
FIELD_BOUNDS: dict[Opcode, dict[str, tuple[int, int]]] = {op: _bounds(op) for op in Opcode}

#: Per opcode: all fields in print order (header, flags, payload; integers and floats).
FIELD_ORDER: dict[Opcode, tuple[str, ...]] = {
    op: (
        *HEADER_NAMES,
        *(ff.name for ff in FLAG_FIELDS[op]),
        *(f.name for f in PAYLOAD_FIELDS[op]),
    )
    for op in Opcode
}

#: Per opcode: symbolic flag field -> {value: name}.
ENUM_NAMES: dict[Opcode, dict[str, dict[int, str]]] = {
    op: {
        ff.name: {int(e): e.name.lower() for e in ff.enum}
        for ff in FLAG_FIELDS[op]
        if ff.enum is not None
    }
    for op in Opcode
}

_ALWAYS_PRINTED = frozenset({"to", "mode"})
"""Symbolic fields printed even when 0 (``to=ibuf``, ``mode=max``), for readability."""

_F32_MAX = float(np.finfo(np.float32).max)

_ALL_KEYS: frozenset[str] = frozenset(
    {"deps"}.union(*(set(names) for names in FIELD_ORDER.values()))
)

_DEP_ORDER: tuple[tuple[str, int], ...] = tuple((n, int(b)) for n, b in DEP_NAMES.items())

# ---------------------------------------------------------------------------- attributes
_INT_CACHE: dict[int, IntegerAttr] = {}
_DEPS_CACHE: dict[int, ArrayAttr[StringAttr]] = {}
_DEPS_BITS: dict[ArrayAttr[StringAttr], int] = {}
_DEPS_BY_ID: dict[int, int] = {}


def int_attr(value: int) -> IntegerAttr:
    """The (shared, immutable) ``i64`` attribute of ``value``; building an
    ``IntegerAttr`` costs ~20 us, so instruction fields reuse one per value."""
    a = _INT_CACHE.get(value)
    if a is None:
        if len(_INT_CACHE) > 1 << 20:
            _INT_CACHE.clear()
        a = _INT_CACHE[value] = IntegerAttr(value, I64)
    return a


_FLOAT_CACHE: dict[bytes, FloatAttr] = {}


def float_attr(value: float) -> FloatAttr:
    """The (shared) ``f32`` attribute of ``value`` rounded to the nearest float32; cached
    by bit pattern (so ``-0.0`` and ``0.0`` stay distinct)."""
    with np.errstate(over="ignore"):
        v32 = np.float32(value)
    key = v32.tobytes()
    a = _FLOAT_CACHE.get(key)
    if a is None:
        if len(_FLOAT_CACHE) > 1 << 16:
            _FLOAT_CACHE.clear()
        a = _FLOAT_CACHE[key] = FloatAttr(float(v32), f32)
    return a


def _float_value(a: Attribute) -> float | None:
    """The value of an ``f32`` float attribute, else None."""
    if type(a) is FloatAttr and isinstance(a.type, Float32Type):
        return a.value.data
    return None


def deps_attr(bits: int) -> ArrayAttr[StringAttr]:
    """``["wait_prev", ...]``: the dependency bits as a list of names (spec order)."""
    a = _DEPS_CACHE.get(bits)
    if a is None:
        if bits & ~DEP_BITS or bits < 0:
            raise ValueError(f"dependency bits 0x{bits:x} are not a subset of 0x{DEP_BITS:X}")
        a = ArrayAttr(StringAttr(n) for n, b in _DEP_ORDER if bits & b)
        _DEPS_CACHE[bits] = a
        _DEPS_BITS[a] = bits
        _DEPS_BY_ID[id(a)] = bits  # safe: the cached attribute lives as long as the module
    return a


def deps_bits(attr: Attribute) -> int:
    """The dependency bits of a ``deps`` list (``ValueError`` for an unknown name)."""
    bits = _DEPS_BY_ID.get(id(attr))  # the shared attributes of deps_attr, by identity
    if bits is not None:
        return bits
    bits = _DEPS_BITS.get(cast(ArrayAttr[StringAttr], attr))
    if bits is not None:
        return bits
    if not isinstance(attr, ArrayAttr):
        raise ValueError("deps must be a list of dependency names")
    bits = 0
    for item in cast(ArrayAttr[Attribute], attr).data:
        b = DEP_NAMES.get(item.data) if isinstance(item, StringAttr) else None
        if b is None:
            raise ValueError(
                f"unknown dependency {item}; expected {', '.join(DEP_NAMES)}"
            )
        bits |= int(b)
    return bits


# ---------------------------------------------------------------------------- base op
class IsaOp(IRDLOperation, ABC):
    """Common part of the instruction ops: the fields as optional ``i64`` properties (absent
    means 0), ``deps`` as a list of dependency names, the custom format and the fused
    verifier. Subclasses set :attr:`OPCODE`; their properties are generated from the
    spec by :func:`_isa_op`."""

    OPCODE: ClassVar[Opcode]

    # -- fields -------------------------------------------------------------------
    def field(self, name: str) -> int | float:
        """The value of field ``name`` (0 when absent; ``deps`` as bits; float32 fields as
        Python floats)."""
        a = self.properties.get(name)
        if a is None:
            return 0
        if name == "deps":
            return deps_bits(a)
        return cast(IntegerAttr | FloatAttr, a).value.data

    @property
    def deps(self) -> int:
        """The dependency-token bits (:class:`vfpga.isa.spec.Dep`)."""
        return int(self.field("deps"))

    # -- verification -------------------------------------------------------------
    def verify_(self) -> None:
        op = self.OPCODE
        bounds = FIELD_BOUNDS[op]
        floats = FLOAT_FIELDS[op]
        vals: dict[str, int | float] = {}
        for k, a in self.properties.items():
            rng = bounds.get(k)
            if rng is not None and type(a) is IntegerAttr:
                v = a.value.data
                if rng[0] <= v <= rng[1]:
                    vals[k] = v
                    continue
            elif k in floats:
                fv = _float_value(a)
                if fv is not None and -_F32_MAX <= fv <= _F32_MAX:
                    vals[k] = fv
                    continue
            self._bad_property(k, a)
        if "core" in vals or "layer" in vals:
            parent = self.parent_op()
            if parent is not None and parent.name == "ifp.package":
                raise VerifyException(
                    f"{self.name}: an instruction of an ifp.package must not set 'core' or "
                    "'layer' (the linker sets them from the package)"
                )
        self._check(vals)

    def _bad_property(self, k: str, a: Attribute) -> None:
        """Raise the error for property ``k`` = ``a`` (or return if it is a legal ``deps``)."""
        op = self.OPCODE
        mnem = self.name
        if k == "deps":
            try:
                bits = deps_bits(a)
            except ValueError as exc:
                raise VerifyException(f"{mnem}: {exc}") from None
            bad = bits & ILLEGAL_DEPS[MODULE_OF[op]]
            if bad:
                names = [n for n, b in _DEP_ORDER if bad & b]
                raise VerifyException(
                    f"{mnem}: dependency {', '.join(names)} is not allowed for an "
                    f"instruction of the {MODULE_OF[op].name} module (docs/isa.md section 2)"
                )
            return
        if k in FLOAT_FIELDS[op]:
            fv = _float_value(a)
            if fv is None:
                raise VerifyException(f"{mnem}: field '{k}' must be an f32 float")
            raise VerifyException(
                f"{mnem}: field '{k}' = {fv} is not finite (a non-finite requantization "
                "constant is an invalid-parameter fault on the machine)"
            )
        rng = FIELD_BOUNDS[op].get(k)
        if rng is None:
            raise VerifyException(
                f"{mnem} has no field '{k}' (fields: {', '.join(FIELD_ORDER[op])}, deps)"
            )
        if not isinstance(a, IntegerAttr):
            raise VerifyException(f"{mnem}: field '{k}' must be an integer")
        v = cast(IntegerAttr, a).value.data
        raise VerifyException(f"{mnem}: field '{k}' = {v} is outside [{rng[0]}, {rng[1]}]")

    def _check(self, f: dict[str, int | float]) -> None:
        """Opcode-specific consistency checks on the field values (absent = 0)."""
        for name, names in ENUM_NAMES[self.OPCODE].items():
            v = f.get(name, 0)
            if v not in names:
                raise VerifyException(f"{self.name}: '{name}' = {v} is not a valid value")

    def _need(self, f: dict[str, int | float], names: Iterable[str], lo: int = 1,
              hi: int | None = None,
              why: str = "") -> None:
        for n in names:
            v = f.get(n, 0)
            if v < lo or (hi is not None and v > hi):
                rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
                raise VerifyException(f"{self.name}: '{n}' = {v} must be {rng}{why}")

    # -- custom format ------------------------------------------------------------
    def print(self, printer: Printer) -> None:
        op = self.OPCODE
        enums = ENUM_NAMES[op]
        floats = FLOAT_FIELDS[op]
        props = self.properties
        parts: list[str] = []
        for name in FIELD_ORDER[op]:
            a = props.get(name)
            if a is None:
                if name in _ALWAYS_PRINTED:
                    parts.append(f"{name}={enums[name][0]}")
                continue
            if name in floats and (fv := _float_value(a)) is not None:
                parts.append(f"{name}={format_f32(fv)}")
                continue
            v = cast(IntegerAttr, a).value.data
            e = enums.get(name)
            parts.append(f"{name}={e[v] if e is not None and v in e else v}")
        d = props.get("deps")
        if d is not None:
            names = [s.data for s in cast(ArrayAttr[StringAttr], d).data]
            parts.append(f"deps [{', '.join(names)}]")
        if parts:
            printer.print_string(" " + " ".join(parts))
        if self.attributes:
            printer.print_string(" ")
            printer.print_attr_dict(self.attributes)

    @classmethod
    def parse(cls, parser: Parser) -> IsaOp:
        op = cls.OPCODE
        mnem = cls.name
        order = FIELD_ORDER[op]
        bounds = FIELD_BOUNDS[op]
        floats = FLOAT_FIELDS[op]
        enums = ENUM_NAMES[op]
        props: dict[str, Attribute] = {}
        seen: set[str] = set()
        while (kw := parser.parse_optional_keyword_in(_ALL_KEYS)) is not None:
            if kw not in bounds and kw not in floats and kw != "deps":
                parser.raise_error(
                    f"{mnem} has no field '{kw}' (fields: {', '.join(order)}, deps)"
                )
            if kw in seen:
                parser.raise_error(f"{mnem}: '{kw}' given twice")
            seen.add(kw)
            if kw == "deps":
                names = parser.parse_comma_separated_list(
                    parser.Delimiter.SQUARE,
                    lambda: parser.parse_keyword_in(DEP_NAMES, " (a dependency name)"),
                )
                bits = 0
                for n in names:
                    bits |= int(DEP_NAMES[n])
                if bits:
                    props["deps"] = deps_attr(bits)
                continue
            parser.parse_punctuation("=", f" after '{kw}'")
            if kw in floats:
                props[kw] = _parse_f32(parser, mnem, kw)
                fv = _float_value(props[kw])
                if fv == 0 and not np.signbit(fv):
                    del props[kw]  # +0.0 is the absent value
                continue
            e = enums.get(kw)
            if e is not None and (
                word := parser.parse_optional_keyword_in(tuple(e.values()))
            ) is not None:
                v = next(k for k, n in e.items() if n == word)
            else:
                pos = parser.pos
                v = parser.parse_integer(
                    allow_boolean=False,
                    context_msg=f" for '{kw}'"
                    + (f" (or one of {', '.join(e.values())})" if e is not None else ""),
                )
                lo, hi = bounds[kw]
                if not lo <= v <= hi:
                    parser.raise_error(
                        f"{mnem}: field '{kw}' = {v} is outside [{lo}, {hi}]", pos, parser.pos
                    )
            if v:
                props[kw] = int_attr(v)
        attributes = parser.parse_optional_attr_dict()
        return cls.create(properties=props, attributes=attributes)


def _parse_f32(parser: Parser, mnem: str, kw: str) -> FloatAttr:
    """A float field's value: a decimal float or integer literal (rounded to the nearest
    float32; an error beyond the float32 range) or a hexadecimal integer (the raw bits)."""
    pos = parser.pos
    tok = parser._current_token.text  # the literal's text: 0x bits vs decimal
    v = parser.parse_optional_number()
    if v is None:
        parser.raise_error(f"Expected a float literal for '{kw}'")
    if isinstance(v, int) and tok.lower().startswith("0x"):
        if not 0 <= v <= 0xFFFFFFFF:
            parser.raise_error(f"{mnem}: field '{kw}': {tok} is not 32 bits", pos, parser.pos)
        return float_attr(float(np.array([v], np.uint32).view(np.float32)[0]))
    with np.errstate(over="ignore"):
        ok = np.isfinite(np.float32(v))
    if not ok:
        parser.raise_error(f"{mnem}: field '{kw}' = {v} does not fit a float32", pos, parser.pos)
    return float_attr(float(v))


def _isa_op(cls: type[IsaOp]) -> type[IsaOp]:
    """Add one optional property per field of ``cls.OPCODE`` (``i64`` integers, ``f32``
    floats, plus ``deps``), make it an IRDL op, and keep the fused verifier of
    :class:`IsaOp` (IRDL's generated ``verify_`` would walk every property definition;
    see the module docstring)."""
    ns: dict[str, object] = {
        k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")
    }
    for name in FIELD_ORDER[cls.OPCODE]:
        kind = FloatAttr if name in FLOAT_FIELDS[cls.OPCODE] else IntegerAttr
        ns[f"{name}_"] = opt_prop_def(kind, prop_name=name)
    ns["deps_"] = opt_prop_def(ArrayAttr[StringAttr], prop_name="deps")
    new = irdl_op_definition(cast(type[IsaOp], type(cls.__name__, cls.__bases__, ns)))
    own_check = cls.__dict__.get("_check")
    # irdl_op_definition installs a generic verify_; ours checks the fields in one pass
    new.verify_ = IsaOp.verify_  # type: ignore[method-assign]
    if own_check is not None:
        new._check = own_check  # type: ignore[method-assign]
    return new


# ---------------------------------------------------------------------------- ops
@_isa_op
class LoadOp(IsaOp):
    """``isa.load`` (LOAD module): copy a 3-D DDR box to on-chip buffer ``to`` with padding.

    ``box[r][c][k] = DDR[ddr + r*stride0 + c*stride1 + k]`` for ``r < n0, c < n1, k < n2``
    is written to ``to`` at byte ``buf`` as the dense array
    ``[pad_t + n0 + pad_b][pad_l + n1 + pad_r][n2]`` with every padding byte equal to
    ``pad_value``. ``to`` is ibuf, wbuf or pbuf. Verified: ``n0, n1, n2 >= 1``; no
    ``wait_prev``/``signal_prev`` (LOAD has no previous module).
    """

    name = "isa.load"
    OPCODE: ClassVar[Opcode] = Opcode.LOAD

    def _check(self, f: dict[str, int | float]) -> None:
        IsaOp._check(self, f)
        if f.get("to", 0) not in [int(b) for b in LOAD_TARGETS]:
            raise VerifyException(f"{self.name}: 'to' must be ibuf, wbuf or pbuf")
        self._need(f, ("n0", "n1", "n2"), why=" (an empty box)")


@_isa_op
class SaveOp(IsaOp):
    """``isa.save`` (SAVE module): write the dense on-chip array ``[n0][n1][n2]`` at byte
    ``buf`` of ``from`` (obuf) to the DDR box addressed as for LOAD (no padding).
    Verified: ``from`` is obuf, ``n0, n1, n2 >= 1``; no ``wait_next``/``signal_next``."""

    name = "isa.save"
    OPCODE: ClassVar[Opcode] = Opcode.SAVE

    def _check(self, f: dict[str, int | float]) -> None:
        IsaOp._check(self, f)
        if f.get("from", 0) not in [int(b) for b in SAVE_SOURCES]:
            raise VerifyException(f"{self.name}: 'from' must be obuf")
        self._need(f, ("n0", "n1", "n2"), why=" (an empty box)")


@_isa_op
class ConvOp(IsaOp):
    """``isa.conv`` (CALC module): convolution of one tile (docs/isa.md section 5, CONV).

    Input int8 ``[in_h][in_w][in_c]`` at ``ibuf[in_addr]``, implicitly padded by
    ``pad_t/pad_b/pad_l/pad_r`` of ``pad_value``; weights int8
    ``[out_c][kh][kw][in_c/groups]`` at ``wbuf[w_addr]``; per output element
    ``acc = start + sum Xpad * W`` over the group's input channels and the window, where
    ``start`` is the bias of the parameter record at ``pbuf[p_addr]`` or, with ``acc_in``,
    the int32 partial sum at ``abuf[acc_addr]`` (int32, wrapping). With ``acc_out`` the int32
    ``acc`` goes to ``abuf[out_addr]``; otherwise (ISA v2) the output channel's record
    ``(bias int32, scale float32, divisor float32)`` gives
    ``y = act(sat8(out_zp + rne(f32(f32(f32(acc) * scale) / divisor))))`` (``f32``: nearest
    float32, ties to even; ``rne``: nearest integer, ties to even), written to
    ``obuf[out_addr]``; a non-finite scale/divisor or a zero divisor in a record faults on
    the machine (records are data, not checked here). Verified: ``kh, kw`` in 1..11,
    strides and groups >= 1, ``in_c``
    and ``out_c`` >= 1 and divisible by ``groups``, a non-empty output, ``p_addr`` (and
    ``acc_addr`` with ``acc_in``, ``out_addr`` with ``acc_out``) multiples of 4.
    """

    name = "isa.conv"
    OPCODE: ClassVar[Opcode] = Opcode.CONV

    def _check(self, f: dict[str, int | float]) -> None:
        IsaOp._check(self, f)
        self._need(f, ("kh", "kw"), 1, MAX_KERNEL)
        self._need(f, ("stride_h", "stride_w", "groups", "in_c", "out_c", "in_h", "in_w"))
        g = f["groups"]
        if f["in_c"] % g or f["out_c"] % g:
            raise VerifyException(
                f"{self.name}: in_c {f['in_c']} and out_c {f['out_c']} must be divisible by "
                f"groups {g}"
            )
        oh, ow = out_hw(f)
        if oh < 1 or ow < 1:
            raise VerifyException(f"{self.name}: the {f['kh']}x{f['kw']} kernel does not fit "
                                  f"the padded {f['in_h']}x{f['in_w']} input")
        aligned = [("p_addr", True), ("acc_addr", bool(f.get("acc_in"))),
                   ("out_addr", bool(f.get("acc_out")))]
        for n, need in aligned:
            if need and f.get(n, 0) % 4:
                raise VerifyException(f"{self.name}: '{n}' = {f[n]} must be a multiple of 4")


@_isa_op
class PoolOp(IsaOp):
    """``isa.pool`` (CALC module): max / average pooling of int8 ``[in_h][in_w][c]`` at
    ``ibuf[in_addr]`` to ``[out_h][out_w][c]`` at ``obuf[out_addr]`` (docs/isa.md section
    5, POOL); ``mode`` is max, avg_pad, avg or global_avg (whole tile to ``[1][1][c]``).

    ISA v2 arithmetic (``f32``: nearest float32, ties to even; ``rne``: nearest integer,
    ties to even): max takes the maximum of the in-bound elements. avg_pad / avg:
    ``e = f32(f32(x - in_zp) * scale)`` per in-bound element, ``s`` their float32 running
    sum in row-major window order, ``m = f32(s / f32(count))`` (count ``kh*kw`` or the
    in-bound elements), ``y = sat8(rne(f32(f32(m / out_scale) + f32(out_zp + 128))) -
    128)``. global_avg: ``y = sat8(out_zp + rne(f32(f32(sum(x - in_zp)) * scale)))``.

    Verified: ``c, in_h, in_w >= 1``; for global_avg the window, stride and pad fields are
    0, otherwise ``kh, kw`` and strides >= 1 and the output is non-empty; ``scale`` and
    ``out_scale`` finite; max: ``scale``, ``out_scale``, ``in_zp``, ``out_zp`` all 0;
    avg_pad / avg: ``out_scale`` non-zero; global_avg: ``out_scale`` 0."""

    name = "isa.pool"
    OPCODE: ClassVar[Opcode] = Opcode.POOL

    def _check(self, f: dict[str, int | float]) -> None:
        IsaOp._check(self, f)
        self._need(f, ("c", "in_h", "in_w"))
        window = ("kh", "kw", "stride_h", "stride_w", "pad_t", "pad_b", "pad_l", "pad_r")
        mode = f.get("mode", 0)
        if mode == PoolMode.MAX:
            for n in ("scale", "out_scale", "in_zp", "out_zp"):
                if f.get(n, 0):
                    raise VerifyException(
                        f"{self.name}: '{n}' = {f[n]} must be 0 for mode=max (max pooling "
                        "does not requantize)"
                    )
        elif mode == PoolMode.GLOBAL_AVG:
            if f.get("out_scale", 0):
                raise VerifyException(
                    f"{self.name}: 'out_scale' = {f['out_scale']} must be 0 for "
                    "mode=global_avg (scale is the whole requantization factor)"
                )
        elif not f.get("out_scale", 0):
            raise VerifyException(
                f"{self.name}: 'out_scale' must be non-zero for the average modes (it divides "
                "the window mean)"
            )
        if mode == PoolMode.GLOBAL_AVG:
            self._need(f, window, 0, 0, " for mode=global_avg")
            return
        self._need(f, ("kh", "kw", "stride_h", "stride_w"))
        oh, ow = out_hw(f)
        if oh < 1 or ow < 1:
            raise VerifyException(f"{self.name}: the {f['kh']}x{f['kw']} window does not fit "
                                  f"the padded {f['in_h']}x{f['in_w']} input")


@_isa_op
class EltwiseOp(IsaOp):
    """``isa.eltwise`` (CALC module), ISA v3, over ``n`` int8 elements at ``ibuf[a_addr]``
    and ``ibuf[b_addr]`` (``b_period = p > 0``: ``p`` values of B, element ``i`` meeting
    ``B[i % p]``) to ``obuf[out_addr]``:

    * ``op=add``: ``y = act(sat8(rne(fma(A + 128, scale_a, fma(B + 128, scale_b, offset)))
      - 128))``, ``fma(a, b, c)`` being ``a*b + c`` rounded once to float32 (ties to even)
      and ``rne`` rounding to the nearest integer (ties to even); the zero points are
      folded into ``offset``;
    * ``op=mul``: ``y = act(sat8(rne(f32(f32(f32((A - a_zp) * (B - b_zp)) * scale_a) +
      f32(out_zp + 128))) - 128))`` (``scale_a`` the ratio ``f32(f32(s_a * s_b) /
      s_out)``; the integer product is exact);
    * ``op=sub``: ``va = f32(f32(A - a_zp) * scale_a)``, ``vb`` likewise,
      ``y = act(sat8(out_zp + rne(f32(f32(va - vb) / out_scale))))``.

    Verified: ``n >= 1``, the float fields finite, ``n`` a multiple of ``b_period``;
    ``add`` with ``a_zp``, ``b_zp``, ``out_zp``, ``out_scale`` 0; ``mul`` with
    ``scale_b``, ``offset`` and ``out_scale`` 0; ``sub`` with ``offset`` 0 and
    ``out_scale`` non-zero."""

    name = "isa.eltwise"
    OPCODE: ClassVar[Opcode] = Opcode.ELTWISE

    def _check(self, f: dict[str, int | float]) -> None:
        IsaOp._check(self, f)
        self._need(f, ("n",))
        p = f.get("b_period", 0)
        if p and f.get("n", 0) % p:
            raise VerifyException(f"{self.name}: 'n' = {f.get('n', 0)} is not a multiple of "
                                  f"'b_period' = {p}")
        if f.get("op", 0) == EltOp.ADD:
            if any(f.get(k, 0) for k in ("a_zp", "b_zp", "out_zp", "out_scale")):
                raise VerifyException(f"{self.name}: op=add folds the zero points into "
                                      "'offset'; a_zp, b_zp, out_zp and out_scale must be 0")
        elif f.get("op", 0) == EltOp.MUL:
            if any(f.get(k, 0) for k in ("scale_b", "offset", "out_scale")):
                raise VerifyException(f"{self.name}: op=mul scales the product by 'scale_a' "
                                      "alone; scale_b, offset and out_scale must be 0")
        else:
            if f.get("offset", 0):
                raise VerifyException(f"{self.name}: 'offset' must be 0 for op=sub")
            if not f.get("out_scale", 0):
                raise VerifyException(f"{self.name}: 'out_scale' must be non-zero for "
                                      "op=sub")


@_isa_op
class ResizeOp(IsaOp):
    """``isa.resize`` (CALC module), ISA v4: bilinear interpolation of the int8 tile
    ``[in_h][in_w][c]`` at ``ibuf[in_addr]`` (rows ``in_y0..``, columns ``in_x0..`` of a
    ``map_in_h x map_in_w`` map) to ``[out_h][out_w][c]`` at ``obuf[out_addr]`` (rows
    ``out_y0..``, columns ``out_x0..`` of the ``map_out_h x map_out_w`` resized map), in
    onnxruntime's float32 steps (docs/isa.md section 5, RESIZE; one home:
    :mod:`vfpga.isa.resize`): per axis the source coordinate of ``coord`` mode, clamped,
    its two neighbours and weights; ``X = f32(f32(x - in_zp) * in_scale)``;
    ``v = dx2*dy2*X11 + dx1*dy2*X21 + dx2*dy1*X12 + dx1*dy1*X22`` rounded step by step;
    ``y = sat8(out_zp + rne(f32(v / out_scale)))``.

    Verified: every extent >= 1, the tile inside the map (``in_y0 + in_h <= map_in_h``,
    ``out_y0 + out_h <= map_out_h``, likewise along the width), ``scale_h``, ``scale_w``
    > 0 and ``out_scale`` non-zero (the float fields are finite)."""

    name = "isa.resize"
    OPCODE: ClassVar[Opcode] = Opcode.RESIZE

    def _check(self, f: dict[str, int | float]) -> None:
        IsaOp._check(self, f)
        self._need(f, ("c", "in_h", "in_w", "out_h", "out_w", "map_in_h", "map_in_w",
                       "map_out_h", "map_out_w"))
        problem = resize_geometry_problem(f)
        if problem:
            raise VerifyException(f"{self.name}: {problem}")


@_isa_op
class SyncOp(IsaOp):
    """``isa.sync``: the layer barrier of layer ``layer`` on core ``core`` (docs/isa.md
    section 3): runs when every earlier instruction of the core has completed, then waits
    until every core of the task has reached its SYNC of that layer. No dependency bits."""

    name = "isa.sync"
    OPCODE: ClassVar[Opcode] = Opcode.SYNC


@_isa_op
class EndOp(IsaOp):
    """``isa.end``: the end of core ``core``'s program (``layer``: its last layer); all its
    modules must be drained. No dependency bits."""

    name = "isa.end"
    OPCODE: ClassVar[Opcode] = Opcode.END


ISA_OPS: tuple[type[IsaOp], ...] = (LoadOp, ConvOp, PoolOp, EltwiseOp, SaveOp, SyncOp, EndOp,
                                    ResizeOp)
"""Every instruction op class."""

OP_OF: dict[Opcode, type[IsaOp]] = {c.OPCODE: c for c in ISA_OPS}
"""The op class of each opcode."""

Isa = Dialect("isa", list(ISA_OPS), [])
"""The ``isa`` dialect."""


# ---------------------------------------------------------------------------- helpers
def op_to_fields(op: Operation) -> tuple[Opcode, FieldDict]:
    """The opcode and the present (non-zero) fields of instruction op ``op``, ``deps`` as
    bits, float32 fields as Python floats: the input of
    :func:`vfpga.isa.codec.encode_batch` (absent fields are 0)."""
    if not isinstance(op, IsaOp):
        raise TypeError(f"'{op.name}' is not an isa op")
    f = {k: a.value.data for k, a in op.properties.items() if k != "deps"}  # type: ignore[attr-defined]
    d = op.properties.get("deps")
    if d is not None:
        f["deps"] = deps_bits(d)
    return op.OPCODE, f


_HEADER_ONLY = ("opcode", "flags", "reserved")


def words_to_fields(words: bytes) -> list[tuple[Opcode, dict[str, int | float]]]:
    """Decode (and validate, :func:`vfpga.isa.codec.decode`) packed instruction words
    into the form :func:`op_to_fields` gives: the opcode and the non-zero fields by name
    (flag fields by name, ``deps`` as bits, float32 fields as Python floats)."""
    prog = decode(words)
    out: list[tuple[Opcode, dict[str, int | float]]] = []
    for i in range(len(prog)):
        f = prog.fields(i)
        out.append((Opcode(int(prog.opcode[i])), {
            k: v for k, v in f.items()
            if k not in _HEADER_ONLY and (v or (isinstance(v, float) and np.signbit(v)))}))
    return out


def fields_to_op(opcode: Opcode, fields: Mapping[str, int | float]) -> IsaOp:
    """The instruction op of ``opcode`` with ``fields`` (header, flag and payload fields by
    name, ``deps`` as bits, float fields as numbers rounded to the nearest float32; 0
    values are dropped, -0.0 is kept). Raises ``ValueError`` for a field the opcode does
    not have (ranges and finiteness are checked by the verifier)."""
    cls = OP_OF[opcode]
    bounds = FIELD_BOUNDS[opcode]
    floats = FLOAT_FIELDS[opcode]
    props: dict[str, Attribute] = {}
    for k, v in fields.items():
        if k in floats:
            if v or np.signbit(v):
                props[k] = float_attr(float(v))
            continue
        if not v:
            continue
        if k == "deps":
            props[k] = deps_attr(int(v))
        elif k in bounds:
            props[k] = int_attr(int(v))
        else:
            raise ValueError(f"{cls.name} has no field '{k}'")
    return new_isa_op(cls, props)


def new_isa_op(cls: type[IsaOp], props: dict[str, Attribute]) -> IsaOp:
    """``cls.create(properties=props)`` without the generic construction work.

    An instruction op has no operands, results, successors or regions, so only the
    dataclass fields with factories (properties, attributes, location) need a value; the
    others keep their class-level defaults. This is ~4x cheaper than ``create`` (which
    also walks every property definition for defaults, and there are none), and matters
    for the ~93k instructions of a ResNet-50. ``tests/test_static_passes.py`` checks that
    the result is structurally equal to ``create``'s.
    """
    op = cls.__new__(cls)
    op.properties = props
    op.attributes = {}
    op.location = UNKNOWN_LOC
    return op


def buffer_footprint(op: Operation) -> list[tuple[Buffer, int]]:
    """The on-chip byte ranges ``op`` writes, as ``(buffer, end)`` pairs (each range
    starts at the op's address field and ends before ``end``): LOAD its padded box in
    ``to``, CONV its output in obuf (or its int32 partial sums in abuf with ``acc_out``),
    POOL and ELTWISE their output in obuf. SAVE, SYNC and END write no buffer
    (:func:`vfpga.isa.effects.written_range`)."""
    opc, f = op_to_fields(op)
    written = written_range(opc, f)
    return [] if written is None else [(written[0], written[2])]
