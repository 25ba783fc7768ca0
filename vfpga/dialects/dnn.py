"""The ``dnn`` dialect: a quantized int8 DNN graph, one op per :mod:`vfpga.frontend.qgraph`
node.

A network is a ``dnn.graph`` op (a symbol with one block) whose block arguments are the
graph inputs and whose ``dnn.return`` lists the graph outputs. Every node op defines one
result; the graph runs its ops in block order (the block is topologically sorted by
construction). Example::

    dnn.graph @tiny(%data: !dnn.qtensor<1x3x8x8, scale = 0.02, zp = 0> as "data") {
      %c1 = dnn.conv %data name "conv1" out "c1" stride [2, 2] pad [1, 1, 1, 1]
          act relu(-128, 127) bias [10, -3] multiplier [13421773, 13421773]
          shift [28, 28] weight 2x3x3x3 "0x0102..."
          : (!dnn.qtensor<1x3x8x8, scale = 0.02, zp = 0>)
          -> !dnn.qtensor<1x2x4x4, scale = 0.05, zp = -128>
      dnn.return %c1 reshape [1, 32] : !dnn.qtensor<1x2x4x4, scale = 0.05, zp = -128>
    }

(printed on one line per op).

**Type choice.** Values have the custom type ``!dnn.qtensor<NxCxHxW, scale = S, zp = Z>``
(int8 elements are implied) rather than ``tensor<NxCxHxWxi8>`` plus per-op attributes:
the quantization belongs to the tensor, not to its producer (a graph input has no
producer; a consumer needs its operand's zero point), so carrying it in the type keeps it
visible at every use, lets the verifiers check the quantization rules locally (max pool
and concat keep their input's quantization) and makes the IR a faithful image of
``QGraph.tensors``. The scale is printed with the shortest decimal that round-trips the
float64 exactly.

**Weights** are ``DenseIntOrFPElementsAttr`` of type ``tensor<OCxICgxKHxKWxi8>`` built
from raw bytes (never from Python lists) and printed by the custom format as a hex string
(``weight 64x3x7x7 "0x..."``) or as ``splat V`` when every element is equal. Per-channel
arrays (bias, multiplier, shift) are ``array<i32: ...>`` built from bytes and printed as
``[a, b, ...]`` up to 64 entries, as the hex of their little-endian bytes beyond (a
ResNet-50 has ~80k per-channel values; xDSL's lexer takes ~18 us per list token).

**Arithmetic** (ISA version 2, docs/quantization.md): exact int32 accumulation, then
requantization in IEEE-754 binary32 steps rounded to nearest, ties to even — the steps of
ONNX Runtime's integer kernels. Float32 parameters (``dnn.conv``'s ``divisor``) are
``f32`` ``FloatAttr`` values, printed as the shortest decimal that reads back (as a
float64 rounded to float32) to the same float32.

**Names.** Node ops carry the QGraph node name (``name``) and the name of the tensor they
define (``out``) as properties; graph input names are the ``as "..."`` suffixes of the
``dnn.graph`` arguments. SSA names are only hints (ONNX names need not be valid SSA ids).

**Custom format.** Node ops print ``dnn.<op> operands (keyword value)* {extra-attrs}? :
(operand types) -> result type``; keywords whose value equals the default are omitted
(for example ``stride [1, 1]``). Discardable attributes added by passes (``placement``,
``macs``) print in the trailing ``{...}``. Print -> parse -> print is the identity.
"""

from __future__ import annotations

import math
from abc import ABC
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import ClassVar, Literal, cast

import numpy as np
from xdsl.dialects.builtin import (
    ArrayAttr,
    BytesAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    DictionaryAttr,
    Float32Type,
    FloatAttr,
    FloatData,
    IntAttr,
    IntegerAttr,
    IntegerType,
    StringAttr,
    TensorType,
    UnitAttr,
)
from xdsl.ir import (
    Attribute,
    Block,
    Dialect,
    Operation,
    ParametrizedAttribute,
    Region,
    SSAValue,
    TypeAttribute,
)
from xdsl.irdl import (
    IRDLOperation,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.parser import AttrParser, Parser, UnresolvedOperand
from xdsl.printer import Printer
from xdsl.traits import HasParent, IsolatedFromAbove, IsTerminator, SymbolOpInterface
from xdsl.utils.exceptions import VerifyException

from vfpga.frontend.qgraph import ELT_KINDS
from vfpga.isa.effects import conv_extent, upsampled_taps, window_out
from vfpga.isa.float32 import format_f32
from vfpga.isa.limits import MAX_MULTIPLIER, MAX_SHIFT
from vfpga.isa.resize import COORD_MODE_NAMES

I8 = IntegerType(8)
I32 = IntegerType(32)
I64 = IntegerType(64)

ACT_KINDS = ("none", "relu", "relu6", "table")
"""Activation kinds; ``table`` (a 256-entry int8 lookup of each output value, property
``act_table``) only on ``dnn.conv``."""
ACT_TABLE_ENTRIES = 256
POOL_KINDS = ("max", "avg", "global_avg")
RESIZE_COORDS = tuple(COORD_MODE_NAMES)
"""``dnn.resize`` coordinate transformations (:class:`vfpga.isa.spec.CoordMode`)."""
PLACEMENTS = ("accel", "host")
LIST_PRINT_LIMIT = 64
"""Per-channel arrays up to this many entries print as ``[a, b, ...]``; longer ones as the
hex of their little-endian int32 bytes (``"0x..."``), which parses ~50x faster."""


# --------------------------------------------------------------------------------------
# Type
# --------------------------------------------------------------------------------------


def _mlir_float(text: str) -> str:
    """``text`` (a Python / numpy float repr) as an MLIR float literal (with a ``.``)."""
    if "." not in text and ("e" in text or "E" in text):
        mant, exp = text.lower().split("e")
        text = f"{mant}.0e{exp}"
    elif "." not in text:
        text += ".0"
    return text


def format_scale(value: float) -> str:
    """The shortest decimal text that parses back to exactly ``value`` and is an MLIR float
    literal (always contains a ``.``)."""
    return _mlir_float(repr(float(value)))


def f32_attr(value: float) -> FloatAttr:
    """An ``f32`` ``FloatAttr`` holding ``value`` rounded to float32 (``OverflowError``
    beyond the float32 range)."""
    return FloatAttr(float(value), Float32Type())


@irdl_attr_definition
class QTensorType(ParametrizedAttribute, TypeAttribute):
    """An int8 tensor with per-tensor affine quantization: ``real = scale * (q - zp)``.

    ``shape`` is the logical ONNX (NCHW) shape, every dimension >= 1; ``scale`` is a finite
    positive float64; ``zp`` is in ``[-128, 127]``. Syntax:
    ``!dnn.qtensor<1x64x56x56, scale = 0.0235, zp = -128>``.
    """

    name = "dnn.qtensor"

    shape: ArrayAttr[IntAttr]
    scale: FloatData
    zero_point: IntAttr

    def __init__(self, shape: Sequence[int], scale: float, zero_point: int) -> None:
        super().__init__(
            ArrayAttr(IntAttr(int(d)) for d in shape),
            FloatData(float(scale)),
            IntAttr(int(zero_point)),
        )

    def get_shape(self) -> tuple[int, ...]:
        """The dimensions as Python ints."""
        return tuple(d.data for d in self.shape.data)

    @property
    def scale_value(self) -> float:
        """The scale as a Python float."""
        return self.scale.data

    @property
    def zp(self) -> int:
        """The zero point as a Python int."""
        return self.zero_point.data

    def num_elements(self) -> int:
        """Product of the dimensions."""
        return math.prod(self.get_shape())

    def same_quantization(self, other: QTensorType) -> bool:
        """True if ``other`` has exactly this scale and zero point."""
        return self.scale.data == other.scale.data and self.zero_point.data == other.zero_point.data

    def verify(self) -> None:
        shape = self.get_shape()
        if not shape or any(d < 1 for d in shape):
            raise VerifyException(
                f"!dnn.qtensor: every dimension must be >= 1 (and rank >= 1), got {list(shape)}"
            )
        s = self.scale.data
        if not (math.isfinite(s) and s > 0.0):
            raise VerifyException(f"!dnn.qtensor: scale must be finite and > 0, got {s!r}")
        if not -128 <= self.zero_point.data <= 127:
            raise VerifyException(
                f"!dnn.qtensor: zero point must be in [-128, 127], got {self.zero_point.data}"
            )

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            printer.print_dimension_list(self.get_shape())
            printer.print_string(f", scale = {format_scale(self.scale.data)}, zp = {self.zp}")

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> tuple[ArrayAttr[IntAttr], FloatData, IntAttr]:
        start = parser.pos
        with parser.in_angle_brackets():
            dims = parser.parse_dimension_list()
            parser.parse_punctuation(",", " after the !dnn.qtensor shape")
            parser.parse_keyword("scale", " in !dnn.qtensor")
            parser.parse_punctuation("=")
            scale = parser.parse_number(context_msg=" for the !dnn.qtensor scale")
            parser.parse_punctuation(",")
            parser.parse_keyword("zp", " in !dnn.qtensor")
            parser.parse_punctuation("=")
            zp = parser.parse_integer(allow_boolean=False, context_msg=" for the zero point")
        try:
            QTensorType(dims, scale, zp)
        except VerifyException as exc:
            parser.raise_error(str(exc), start, parser.pos)
        return ArrayAttr(IntAttr(d) for d in dims), FloatData(float(scale)), IntAttr(zp)


# --------------------------------------------------------------------------------------
# Attribute helpers (all build from bytes; never from Python lists of attributes)
# --------------------------------------------------------------------------------------


def i64_attr(value: int) -> IntegerAttr:
    """An ``i64`` integer attribute."""
    return IntegerAttr(int(value), I64)


def int_array(values: Iterable[int]) -> DenseArrayBase:
    """An ``array<i64: ...>`` attribute."""
    return DenseArrayBase(I64, BytesAttr(np.asarray(list(values), dtype="<i8").tobytes()))


def i32_array(values: np.ndarray | Sequence[int], what: str = "array") -> DenseArrayBase:
    """An ``array<i32: ...>`` attribute built from the bytes of ``values`` (1-D).

    Raises ValueError if a value does not fit in int32 (``what`` names it in the message).
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {arr.shape}")
    if arr.dtype != np.int32:
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{what} must be integers, got dtype {arr.dtype}")
        if arr.size and (arr.min() < -(1 << 31) or arr.max() >= (1 << 31)):
            raise ValueError(f"{what} has values outside int32")
    return DenseArrayBase(I32, BytesAttr(np.ascontiguousarray(arr, dtype="<i4").tobytes()))


def array_values(attr: DenseArrayBase) -> np.ndarray:
    """The elements of an ``array<i32>`` / ``array<i64>`` attribute as a read-only numpy view."""
    dtype = "<i4" if attr.elt_type == I32 else "<i8"
    return np.frombuffer(attr.data.data, dtype=dtype)


def int_tuple(attr: DenseArrayBase) -> tuple[int, ...]:
    """The elements of an integer ``array<...>`` attribute as a tuple of Python ints."""
    return tuple(array_values(attr).tolist())


def weight_attr(weight: np.ndarray) -> DenseIntOrFPElementsAttr:
    """A ``dense<...> : tensor<...xi8>`` attribute from the raw bytes of an int8 array."""
    w = np.asarray(weight)
    if w.dtype != np.int8:
        if w.size and not np.issubdtype(w.dtype, np.integer):
            raise ValueError(f"weight must be int8, got dtype {w.dtype}")
        if w.size and (w.min() < -128 or w.max() > 127):
            raise ValueError("weight has values outside int8")
    data = np.ascontiguousarray(w, dtype=np.int8).tobytes()
    return DenseIntOrFPElementsAttr(TensorType(I8, w.shape), BytesAttr(data))


def weight_values(attr: DenseIntOrFPElementsAttr) -> np.ndarray:
    """The int8 weights of a dense attribute as a read-only numpy view with its shape."""
    return np.frombuffer(attr.data.data, dtype=np.int8).reshape(attr.get_shape())


def _unit_bool(attr: Attribute | None) -> bool:
    return attr is not None


# --------------------------------------------------------------------------------------
# Custom assembly format engine shared by the node ops
# --------------------------------------------------------------------------------------

FieldKind = Literal["str", "int", "ints", "oints", "i32s", "f32", "flag", "ident", "act", "weight",
                    "dict"]


@dataclass(frozen=True)
class _Field:
    """One ``keyword value`` clause of a node op's custom format.

    ``kind`` selects the value syntax: ``str`` "text"; ``int`` 3; ``ints`` / ``i32s``
    [1, 2] (``oints``: the same for an optional property, absent when the clause is
    omitted); ``f32`` a float literal (an optional ``f32`` ``FloatAttr`` property, absent
    when the clause is omitted); ``flag`` (keyword alone, a unit property); ``ident`` a
    bare word from
    ``choices``; ``act`` relu(lo, hi) (properties ``act`` and ``act_range``); ``weight``
    64x3x7x7 "0xHEX" or 64x3x7x7 splat V; ``dict`` {k = v}. The clause is omitted when the
    value equals ``default`` (``None``: always printed, required when parsing).
    """

    keyword: str
    prop: str
    kind: FieldKind
    default: object = None
    choices: tuple[str, ...] = ()


def _field_value(op: Operation, f: _Field) -> object:
    """The Python value of a field (used to compare against the default)."""
    attr = op.properties.get(f.prop)
    match f.kind:
        case "str" | "ident":
            return cast(StringAttr, attr).data if attr is not None else None
        case "int":
            return cast(IntegerAttr, attr).value.data if attr is not None else None
        case "ints" | "oints" | "i32s":
            return int_tuple(cast(DenseArrayBase, attr)) if attr is not None else None
        case "f32":
            return cast(FloatAttr, attr).value.data if isinstance(attr, FloatAttr) else attr
        case "flag":
            return _unit_bool(attr)
        case "act":
            rng = op.properties.get("act_range")
            if attr is None or rng is None:
                return None
            lo, hi = int_tuple(cast(DenseArrayBase, rng))
            return (cast(StringAttr, attr).data, lo, hi)
        case _:
            return attr


ELIDE_LARGER_THAN: ContextVar[int | None] = ContextVar("dnn_elide_larger_than", default=None)
"""When set (see :func:`eliding_constants`), hex constants (weights, long i32 arrays) of
more than this many bytes print as ``"<elided N bytes>"``, like MLIR's
``--mlir-elide-elementsattrs-if-larger``; such text is for reading, it does not parse."""


@contextmanager
def eliding_constants(larger_than: int) -> Iterator[None]:
    """Print hex constants of more than ``larger_than`` bytes elided, in this block."""
    token = ELIDE_LARGER_THAN.set(larger_than)
    try:
        yield
    finally:
        ELIDE_LARGER_THAN.reset(token)


def _hex(data: bytes) -> str:
    limit = ELIDE_LARGER_THAN.get()
    if limit is not None and len(data) > limit:
        return f'"<elided {len(data)} bytes>"'
    return f'"0x{data.hex().upper()}"'


def _print_ints(printer: Printer, values: Iterable[int]) -> None:
    printer.print_string("[" + ", ".join(str(int(v)) for v in values) + "]")


def _print_field(printer: Printer, op: Operation, f: _Field) -> None:
    attr = op.properties.get(f.prop)
    if f.kind == "flag":
        if attr is not None:
            printer.print_string(f" {f.keyword}")
        return
    value = _field_value(op, f)
    if f.default is not None and value == f.default:
        return
    if attr is None:
        return  # missing required property: the verifier reports it
    printer.print_string(f" {f.keyword} ")
    match f.kind:
        case "str":
            printer.print_string_literal(cast(StringAttr, attr).data)
        case "ident":
            printer.print_string(cast(StringAttr, attr).data)
        case "int":
            printer.print_string(str(cast(IntegerAttr, attr).value.data))
        case "f32":
            if isinstance(attr, FloatAttr):
                printer.print_string(format_f32(attr.value.data))
            else:  # not a FloatAttr: the verifier reports it
                printer.print_attribute(attr)
        case "ints" | "oints":
            _print_ints(printer, array_values(cast(DenseArrayBase, attr)).tolist())
        case "i32s":
            arr_attr = cast(DenseArrayBase, attr)
            if len(arr_attr) <= LIST_PRINT_LIMIT:
                _print_ints(printer, array_values(arr_attr).tolist())
            else:
                printer.print_string(_hex(arr_attr.data.data))
        case "act":
            kind, lo, hi = cast(tuple[str, int, int], value)
            printer.print_string(f"{kind}({lo}, {hi})")
        case "weight":
            dense = cast(DenseIntOrFPElementsAttr, attr)
            printer.print_dimension_list(dense.get_shape())
            data = dense.data.data
            arr = np.frombuffer(data, dtype=np.int8)
            if arr.size > 1 and bool(np.all(arr == arr[0])):
                printer.print_string(f" splat {int(arr[0])}")
            else:
                printer.print_string(" " + _hex(data))
        case "dict":
            printer.print_attribute(attr)
        case _:  # pragma: no cover - exhaustive
            raise AssertionError(f.kind)


def _parse_ints(parser: Parser) -> list[int]:
    return parser.parse_comma_separated_list(
        parser.Delimiter.SQUARE, lambda: parser.parse_integer(allow_boolean=False)
    )


def _parse_field(parser: Parser, f: _Field, props: dict[str, Attribute], op_name: str) -> None:
    match f.kind:
        case "str":
            props[f.prop] = StringAttr(parser.parse_str_literal(f" after '{f.keyword}'"))
        case "ident":
            word = parser.parse_optional_keyword_in(f.choices)
            if word is None:
                parser.raise_error(
                    f"{op_name}: '{f.keyword}' must be one of {', '.join(f.choices)}"
                )
            props[f.prop] = StringAttr(word)
        case "int":
            props[f.prop] = i64_attr(parser.parse_integer(allow_boolean=False))
        case "f32":
            start = parser.pos
            value = float(parser.parse_number(context_msg=f" for '{f.keyword}' of {op_name}"))
            try:
                props[f.prop] = f32_attr(value)
            except OverflowError:
                parser.raise_error(
                    f"{op_name}: '{f.keyword}' {value!r} is outside the float32 range",
                    start,
                    parser.pos,
                )
        case "ints" | "oints":
            props[f.prop] = int_array(_parse_ints(parser))
        case "i32s":
            if (text := parser.parse_optional_str_literal()) is not None:
                try:
                    if not text.startswith("0x"):
                        raise ValueError
                    data = bytes.fromhex(text[2:])
                except ValueError:
                    parser.raise_error(f"{op_name}: '{f.keyword}' must be [...] or \"0xHEX\"")
                if len(data) % 4:
                    parser.raise_error(
                        f"{op_name}: '{f.keyword}' hex has {len(data)} bytes, not a multiple of 4"
                    )
                props[f.prop] = DenseArrayBase(I32, BytesAttr(data))
                return
            values = _parse_ints(parser)
            try:
                props[f.prop] = i32_array(np.asarray(values, dtype=np.int64), f.keyword)
            except (ValueError, OverflowError) as exc:
                parser.raise_error(f"{op_name}: {exc}")
        case "flag":
            props[f.prop] = UnitAttr()
        case "act":
            kind = parser.parse_optional_keyword_in(ACT_KINDS)
            if kind is None:
                parser.raise_error(f"{op_name}: activation must be one of {', '.join(ACT_KINDS)}")
            parser.parse_punctuation("(")
            lo = parser.parse_integer(allow_boolean=False)
            parser.parse_punctuation(",")
            hi = parser.parse_integer(allow_boolean=False)
            parser.parse_punctuation(")")
            props["act"] = StringAttr(kind)
            props["act_range"] = int_array((lo, hi))
        case "weight":
            dims = parser.parse_dimension_list()
            if not dims:
                parser.raise_error(f"{op_name}: expected the weight shape, e.g. 64x3x7x7")
            n = math.prod(dims)
            if parser.parse_optional_keyword("splat") is not None:
                v = parser.parse_integer(allow_boolean=False)
                if not -128 <= v <= 127:
                    parser.raise_error(f"{op_name}: splat weight {v} is outside int8")
                data = np.full(n, v, dtype=np.int8).tobytes()
            else:
                text = parser.parse_str_literal(" (hex weight bytes) after the weight shape")
                if not text.startswith("0x"):
                    parser.raise_error(
                        f'{op_name}: weight bytes must be a "0x..." hex string (text printed '
                        "with elided constants does not parse: vfpga import --no-elide)")
                try:
                    data = bytes.fromhex(text[2:])
                except ValueError:
                    parser.raise_error(f"{op_name}: invalid hex in the weight string")
                if len(data) != n:
                    parser.raise_error(
                        f"{op_name}: weight shape {'x'.join(map(str, dims))} needs {n} bytes, "
                        f"the hex string has {len(data)}"
                    )
            props[f.prop] = DenseIntOrFPElementsAttr(TensorType(I8, dims), BytesAttr(data))
        case "dict":
            attr = parser.parse_attribute()
            if not isinstance(attr, DictionaryAttr):
                parser.raise_error(f"{op_name}: '{f.keyword}' must be a dictionary {{...}}")
            props[f.prop] = attr
        case _:  # pragma: no cover - exhaustive
            raise AssertionError(f.kind)


def _default_attrs(f: _Field) -> dict[str, Attribute]:
    """The properties a field takes when its clause is omitted."""
    d = f.default
    match f.kind:
        case "str" | "ident":
            return {f.prop: StringAttr(cast(str, d))}
        case "int":
            return {f.prop: i64_attr(cast(int, d))}
        case "ints":
            return {f.prop: int_array(cast(tuple[int, ...], d))}
        case "i32s":
            return {f.prop: i32_array(list(cast(tuple[int, ...], d)))}
        case "act":
            kind, lo, hi = cast(tuple[str, int, int], d)
            return {"act": StringAttr(kind), "act_range": int_array((lo, hi))}
        case "dict":
            return {f.prop: cast(DictionaryAttr, d)}
        case _:
            return {}


# --------------------------------------------------------------------------------------
# Verification helpers
# --------------------------------------------------------------------------------------


def _check_range(
    who: str, what: str, values: np.ndarray, lo: int, hi_excl: int, interval: str
) -> None:
    """Raise if an element of ``values`` is outside ``[lo, hi_excl)`` (``interval`` is how
    the message shows the range). Scalars are reported as ``what = v``, arrays as
    ``what[i] = v``."""
    if values.size == 0:
        return
    bad = np.flatnonzero((values < lo) | (values >= hi_excl))
    if bad.size:
        i = int(bad[0])
        ref = what if values.ndim == 0 else f"{what}[{i}]"
        more = f" ({bad.size} bad entries)" if bad.size > 1 else ""
        raise VerifyException(f"{who}: {ref} = {int(values.flat[i])} is outside {interval}{more}")


_MULT_RANGE = (0, MAX_MULTIPLIER, "[0, 2**31)")
_SHIFT_RANGE = (0, MAX_SHIFT + 1, f"[0, {MAX_SHIFT}]")


# --------------------------------------------------------------------------------------
# Node ops
# --------------------------------------------------------------------------------------


class DnnNodeOp(IRDLOperation, ABC):
    """Common part of the node ops: one ``!dnn.qtensor`` result, the QGraph node name
    (property ``name``) and output tensor name (property ``out``), the custom format."""

    node_name = prop_def(StringAttr, prop_name="name")
    out_name = prop_def(StringAttr, prop_name="out")
    output = result_def(QTensorType)

    FIELDS: ClassVar[tuple[_Field, ...]] = ()
    """The ``keyword value`` clauses of the custom format, in print order."""

    @property
    def label(self) -> str:
        """``dnn.conv "conv1"``: how messages name this op."""
        name = self.properties.get("name")
        shown = name.data if isinstance(name, StringAttr) else "?"
        return f'{self.name} "{shown}"'

    @property
    def output_type(self) -> QTensorType:
        """The result's quantized tensor type."""
        return self.output.type

    def input_types(self) -> list[QTensorType]:
        """The operands' quantized tensor types, in order."""
        return [cast(QTensorType, o.type) for o in self.operands]

    # -- custom format ---------------------------------------------------------------

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_list(self.operands, printer.print_operand)
        for f in self.FIELDS:
            _print_field(printer, self, f)
        if self.attributes:
            printer.print_string(" ")
            printer.print_attr_dict(self.attributes)
        printer.print_string(" : ")
        printer.print_function_type([o.type for o in self.operands], [self.output.type])

    @classmethod
    def parse(cls, parser: Parser) -> DnnNodeOp:
        op_name = cls.name
        pos = parser.pos
        operands: list[UnresolvedOperand] = []
        first = parser.parse_optional_unresolved_operand()
        if first is not None:
            operands.append(first)
            while parser.parse_optional_punctuation(",") is not None:
                operands.append(parser.parse_unresolved_operand())
        props: dict[str, Attribute] = {}
        seen: set[str] = set()
        by_kw = {f.keyword: f for f in cls.FIELDS}
        while (kw := parser.parse_optional_keyword_in(by_kw)) is not None:
            if kw in seen:
                parser.raise_error(f"{op_name}: '{kw}' given twice")
            seen.add(kw)
            _parse_field(parser, by_kw[kw], props, op_name)
        for f in cls.FIELDS:
            if f.keyword in seen:
                continue
            if f.default is None and f.kind != "flag":
                parser.raise_error(f"{op_name}: missing '{f.keyword}' clause")
            props.update(_default_attrs(f))
        attributes = parser.parse_optional_attr_dict()
        parser.parse_punctuation(":", f" before the type of {op_name}")
        type_pos = parser.pos
        ftype = parser.parse_function_type()
        if len(ftype.outputs.data) != 1:
            parser.raise_error(
                f"{op_name} has exactly one result, got {len(ftype.outputs)}", type_pos, parser.pos
            )
        if len(ftype.inputs.data) != len(operands):
            parser.raise_error(
                f"{op_name}: {len(operands)} operands but {len(ftype.inputs)} operand types",
                type_pos,
                parser.pos,
            )
        values = parser.resolve_operands(operands, ftype.inputs.data, pos)
        return cls.create(
            operands=values,
            result_types=[ftype.outputs.data[0]],
            properties=props,
            attributes=attributes,
        )

    # -- verification ----------------------------------------------------------------

    def _verify_act(self) -> None:
        kind = cast(StringAttr, self.properties["act"]).data
        if kind not in ACT_KINDS:
            raise VerifyException(
                f"{self.label}: activation '{kind}' is not one of {', '.join(ACT_KINDS)}"
            )
        table = self.properties.get("act_table")
        n = 0 if table is None else len(cast(DenseArrayBase, table))
        if kind == "table":
            if not isinstance(self, ConvOp):
                raise VerifyException(f"{self.label}: activation 'table' is for dnn.conv only")
            if n != ACT_TABLE_ENTRIES:
                raise VerifyException(
                    f"{self.label}: activation 'table' needs {ACT_TABLE_ENTRIES} table "
                    f"entries, got {n}"
                )
            _check_range(self.label, "table", np.asarray(int_tuple(cast(DenseArrayBase, table))),
                         -128, 128, "[-128, 127]")
        elif n:
            raise VerifyException(f"{self.label}: a table is given for activation '{kind}'")
        rng = int_tuple(cast(DenseArrayBase, self.properties["act_range"]))
        if len(rng) != 2 or not -128 <= rng[0] <= rng[1] <= 127:
            raise VerifyException(
                f"{self.label}: activation range must be lo <= hi within [-128, 127], "
                f"got {list(rng)}"
            )

    def _verify_placement(self) -> None:
        p = self.attributes.get("placement")
        if p is not None and (not isinstance(p, StringAttr) or p.data not in PLACEMENTS):
            raise VerifyException(f'{self.label}: placement must be "accel" or "host"')

    def act_spec(self) -> tuple[str, int, int]:
        """``(kind, lo, hi)`` of the fused activation (only for ops that have one)."""
        lo, hi = int_tuple(cast(DenseArrayBase, self.properties["act_range"]))
        return cast(StringAttr, self.properties["act"]).data, lo, hi


def _divisor_prop(name: str, divisor: float) -> dict[str, Attribute]:
    """The optional ``divisor`` property of node ``name``: absent for 1.0, else the f32
    value (ValueError outside the float32 range)."""
    if float(np.float32(divisor)) == 1.0 and not math.isnan(divisor):
        return {}
    try:
        return {"divisor": f32_attr(divisor)}
    except OverflowError:
        raise ValueError(f"{name}: divisor {divisor!r} is outside the float32 range") from None


_NAME_FIELDS = (_Field("name", "name", "str"), _Field("out", "out", "str"))


def _named_int_props(name: str, out: str, key: str, value: int) -> dict[str, Attribute]:
    """The properties of a one-operand op with ``name``, ``out`` and one i64 ``key``."""
    return {"name": StringAttr(name), "out": StringAttr(out), key: i64_attr(value)}
_ACT_FIELD = _Field("act", "act", "act", ("none", -128, 127))


@irdl_op_definition
class ConvOp(DnnNodeOp):
    """Quantized 2-D convolution with fused bias, per-output-channel requantization and
    activation (``QConv``).

    Operand ``input`` is ``[N, C, H, W]``; ``weight`` is int8 ``[OC, C/groups, KH, KW]``;
    ``bias``, ``multiplier``, ``shift`` are int32 arrays of ``OC`` entries. ``strides`` is
    ``(sh, sw)``, ``pads`` is ONNX order ``(top, left, bottom, right)``. For every output
    element::

        acc = bias[oc] + sum((in[n, ci, y*sh + ky - top, x*sw + kx - left] - in_zp)
                             * weight[oc, ci - g*Cg, ky, kx])

    over the ``Cg = C/groups`` input channels of the group ``g = oc // (OC/groups)`` and the
    kernel window (out-of-bounds input elements contribute zero; int32), then, in float32
    steps rounded to nearest even (``f32``)::

        scale[oc] = f32(multiplier[oc] / 2**shift[oc])
        v = f32(f32(f32(acc) * scale[oc]) / divisor)
        out = act(sat8(out_zp + round_half_even(v)))

    (saturation computed in float: ``v = +-inf`` saturates), where ``act`` clamps to
    ``[lo, hi]`` (``relu``: lo is the output zero point; ``relu6``: hi is 6.0 quantized).
    ``divisor`` is an optional ``f32`` property, ``1.0`` when absent (then the division is
    exact: ONNX Runtime's ``QLinearConv``); a requantizing copy (unit weights) has
    ``scale = s_in`` and ``divisor = s_out``. The custom format prints
    ``divisor 0.0235`` only when it is not 1.0. The result is ``[N, OC, OH, OW]`` with
    ``OH = (H + top + bottom - KH) // sh + 1`` (likewise ``OW``).

    Optional ``dilations`` ``(dh, dw)`` (kernel tap ``ky`` reads row ``y*sh + ky*dh - top``,
    the kernel spans ``KH' = (KH - 1) * dh + 1`` rows) and ``upsample`` ``(uh, uw)`` (the
    input is first spread out by zero insertion: element ``(y, x)`` of ``in - in_zp`` at
    ``(y*uh, x*uw)`` of a ``H' = (H - 1) * uh + 1`` row grid of zeros; transposed
    convolution and nearest resize), printed only when not ``[1, 1]``; then
    ``OH = (H' + top + bottom - KH') // sh + 1``.

    Optional ``fsum`` (an ``f32``, the input scale; property ``fsum_in_scale``): the
    float32-summing transposed convolution of ISA version 5 (onnxruntime's float32
    ``DequantizeLinear -> ConvTranspose -> QuantizeLinear``, :mod:`vfpga.isa.float_conv`):
    ``bias`` is the int32 quantized bias, ``multiplier / 2**shift`` the weight scales,
    ``divisor`` the output scale, and the integer formula above does not apply
    (:class:`vfpga.frontend.qgraph.QConv`); groups must be 1.

    Verified: input channels = weight IC x groups, OC divisible by groups, output dims per
    the formula, ``OC`` entries in each per-channel array, multipliers in ``[0, 2**31)``,
    shifts in ``[0, 62]``, ``divisor`` an ``f32`` value that is finite and > 0, strides
    >= 1, pads >= 0, activation range within int8.
    """

    name = "dnn.conv"

    input = operand_def(QTensorType)
    weight = prop_def(DenseIntOrFPElementsAttr)
    bias = prop_def(DenseArrayBase)
    multiplier = prop_def(DenseArrayBase)
    shift = prop_def(DenseArrayBase)
    divisor = opt_prop_def(FloatAttr)
    strides = prop_def(DenseArrayBase)
    pads = prop_def(DenseArrayBase)
    groups = prop_def(IntegerAttr)
    act = prop_def(StringAttr)
    act_range = prop_def(DenseArrayBase)
    act_table = prop_def(DenseArrayBase)
    dilations = opt_prop_def(DenseArrayBase)
    upsample = opt_prop_def(DenseArrayBase)
    fsum_in_scale = opt_prop_def(FloatAttr)

    FIELDS: ClassVar[tuple[_Field, ...]] = (
        *_NAME_FIELDS,
        _Field("stride", "strides", "ints", (1, 1)),
        _Field("pad", "pads", "ints", (0, 0, 0, 0)),
        _Field("groups", "groups", "int", 1),
        _Field("dilation", "dilations", "oints", (1, 1)),
        _Field("upsample", "upsample", "oints", (1, 1)),
        _Field("fsum", "fsum_in_scale", "f32", 0.0),
        _ACT_FIELD,
        _Field("table", "act_table", "i32s", ()),
        _Field("bias", "bias", "i32s"),
        _Field("multiplier", "multiplier", "i32s"),
        _Field("shift", "shift", "i32s"),
        _Field("divisor", "divisor", "f32", 1.0),
        _Field("weight", "weight", "weight"),
    )

    def __init__(
        self,
        input: SSAValue | Operation,
        result_type: QTensorType,
        *,
        name: str,
        out: str,
        weight: np.ndarray | DenseIntOrFPElementsAttr,
        bias: np.ndarray | DenseArrayBase,
        multiplier: np.ndarray | DenseArrayBase,
        shift: np.ndarray | DenseArrayBase,
        strides: Sequence[int] = (1, 1),
        pads: Sequence[int] = (0, 0, 0, 0),
        groups: int = 1,
        act: tuple[str, int, int] = ("none", -128, 127),
        divisor: float = 1.0,
        act_table: Sequence[int] = (),
        dilations: Sequence[int] = (1, 1),
        upsample: Sequence[int] = (1, 1),
        fsum_in_scale: float | None = None,
    ) -> None:
        def arr(v: np.ndarray | DenseArrayBase, what: str) -> DenseArrayBase:
            return v if isinstance(v, DenseArrayBase) else i32_array(v, f"{name}: {what}")

        w = weight if isinstance(weight, DenseIntOrFPElementsAttr) else weight_attr(weight)
        extra = _divisor_prop(name, divisor)
        if tuple(dilations) != (1, 1):
            extra["dilations"] = int_array(dilations)
        if tuple(upsample) != (1, 1):
            extra["upsample"] = int_array(upsample)
        if fsum_in_scale is not None:
            extra["fsum_in_scale"] = f32_attr(fsum_in_scale)
        super().__init__(
            operands=[input],
            result_types=[result_type],
            properties={
                **extra,
                "name": StringAttr(name),
                "out": StringAttr(out),
                "weight": w,
                "bias": arr(bias, "bias"),
                "multiplier": arr(multiplier, "multiplier"),
                "shift": arr(shift, "shift"),
                "strides": int_array(strides),
                "pads": int_array(pads),
                "groups": i64_attr(groups),
                "act": StringAttr(act[0]),
                "act_range": int_array(act[1:]),
                "act_table": i32_array(list(act_table), f"{name}: act_table"),
            },
        )

    def act_table_values(self) -> tuple[int, ...]:
        """The 256 int8 entries of the ``table`` activation (empty for other kinds)."""
        return int_tuple(self.act_table)

    def weight_array(self) -> np.ndarray:
        """The int8 weights ``[OC, C/groups, KH, KW]`` (read-only view of the IR bytes)."""
        return weight_values(self.weight)

    @property
    def divisor_value(self) -> float:
        """The ``divisor`` as a Python float (a float32 value; ``1.0`` when absent)."""
        d = self.divisor
        return 1.0 if d is None else float(d.value.data)

    @property
    def fsum_value(self) -> float | None:
        """The input scale of a float32-summing conv (``fsum``), else None."""
        v = self.fsum_in_scale
        if not isinstance(v, FloatAttr) or float(v.value.data) == 0.0:
            return None
        return float(v.value.data)

    def dilation_pair(self) -> tuple[int, int]:
        """``dilations`` as a pair (``(1, 1)`` when absent)."""
        d = int_tuple(self.dilations) if self.dilations is not None else (1, 1)
        return (d[0], d[1]) if len(d) == 2 else (1, 1)

    def upsample_pair(self) -> tuple[int, int]:
        """``upsample`` as a pair (``(1, 1)`` when absent)."""
        u = int_tuple(self.upsample) if self.upsample is not None else (1, 1)
        return (u[0], u[1]) if len(u) == 2 else (1, 1)

    def macs(self) -> int:
        """Exact multiply-accumulate count: ``N * OC * OH * OW * C/groups * KH * KW``
        (with ``upsample``, only the products with input elements, not inserted zeros)."""
        n, oc, oh, ow = self.output_type.get_shape()
        _, icg, kh, kw = self.weight.get_shape()
        if self.upsample_pair() == (1, 1):
            return n * oc * oh * ow * icg * kh * kw
        h, w = self.input_types()[0].get_shape()[2:]
        p = int_tuple(self.pads)
        s = int_tuple(self.strides)
        (dh, dw), (uh, uw) = self.dilation_pair(), self.upsample_pair()
        rows = upsampled_taps(h, kh, s[0], p[0], dh, uh, oh)
        cols = upsampled_taps(w, kw, s[1], p[1], dw, uw, ow)
        return n * oc * icg * rows * cols

    def verify_(self) -> None:
        who = self.label
        self._verify_placement()
        in_t = self.input_types()[0]
        in_shape = in_t.get_shape()
        out_shape = self.output_type.get_shape()
        if len(in_shape) != 4 or len(out_shape) != 4:
            raise VerifyException(
                f"{who}: input and output must be 4-D NCHW, got {list(in_shape)} -> "
                f"{list(out_shape)}"
            )
        wt = self.weight.type
        if not isinstance(wt, TensorType) or wt.get_element_type() != I8:
            raise VerifyException(f"{who}: weight must be a tensor of i8")
        w_shape = self.weight.get_shape()
        if len(w_shape) != 4:
            raise VerifyException(
                f"{who}: weight must be 4-D [OC, IC/groups, KH, KW], got {list(w_shape)}"
            )
        oc, icg, kh, kw = w_shape
        groups = self.groups.value.data
        strides = int_tuple(self.strides)
        pads = int_tuple(self.pads)
        if groups < 1:
            raise VerifyException(f"{who}: groups must be >= 1, got {groups}")
        if len(strides) != 2 or min(strides) < 1:
            raise VerifyException(f"{who}: strides must be 2 values >= 1, got {list(strides)}")
        if len(pads) != 4 or min(pads) < 0:
            raise VerifyException(f"{who}: pads must be 4 values >= 0, got {list(pads)}")
        n, c, h, w = in_shape
        if c != icg * groups:
            raise VerifyException(
                f"{who}: input has {c} channels but weight IC {icg} x groups {groups} = "
                f"{icg * groups}"
            )
        if oc % groups:
            raise VerifyException(
                f"{who}: output channels {oc} are not divisible by groups {groups}"
            )
        fsum = self.properties.get("fsum_in_scale")
        if fsum is not None:
            fv = cast(FloatAttr, fsum).value.data if isinstance(fsum, FloatAttr) else None
            if fv is None or not (math.isfinite(fv) and fv > 0.0) or groups != 1:
                raise VerifyException(f"{who}: fsum must be a finite f32 > 0 on a conv with "
                                      "groups 1")
        for key in ("dilations", "upsample"):
            v = self.properties.get(key)
            if v is not None and (len(vals := int_tuple(cast(DenseArrayBase, v))) != 2
                                  or not 1 <= min(vals) <= max(vals) <= 255):
                raise VerifyException(f"{who}: {key} must be 2 values in 1..255")
        (dh, dw), (uh, uw) = self.dilation_pair(), self.upsample_pair()
        vh, ekh = conv_extent(h, kh, dh, uh)
        vw, ekw = conv_extent(w, kw, dw, uw)
        oh = window_out(vh, ekh, strides[0], pads[0], pads[2])
        ow = window_out(vw, ekw, strides[1], pads[1], pads[3])
        if oh < 1 or ow < 1:
            raise VerifyException(
                f"{who}: kernel {kh}x{kw} does not fit the padded input {h}x{w} (pads {list(pads)})"
            )
        if out_shape != (n, oc, oh, ow):
            raise VerifyException(
                f"{who}: output shape {list(out_shape)} does not match the convolution "
                f"formula, expected {[n, oc, oh, ow]}"
            )
        for key in ("bias", "multiplier", "shift"):
            a = cast(DenseArrayBase, self.properties[key])
            if a.elt_type != I32:
                raise VerifyException(f"{who}: {key} must be array<i32>")
            if len(a) != oc:
                raise VerifyException(
                    f"{who}: {key} has {len(a)} entries, expected {oc} (one per output channel)"
                )
        _check_range(who, "multiplier", array_values(self.multiplier), *_MULT_RANGE)
        _check_range(who, "shift", array_values(self.shift), *_SHIFT_RANGE)
        d = self.divisor
        if d is not None:
            if not isinstance(d.type, Float32Type):
                raise VerifyException(f"{who}: divisor must be an f32 value, got {d.type}")
            dv = d.value.data
            if not (math.isfinite(dv) and dv > 0.0):
                raise VerifyException(f"{who}: divisor must be finite and > 0, got {dv!r}")
        self._verify_act()


@irdl_op_definition
class PoolOp(DnnNodeOp):
    """Max, average or global-average pooling (``QPool``).

    The average kinds requantize with the operand's and result's scales ``s_in``,
    ``s_out`` (float32 values) and zero points, in float32 steps rounded to nearest even
    (``f32``), as ONNX Runtime's kernels do:

    ``kind = max``: ``out = max(in)`` over the window (padding never wins); the output has
    the input's scale and zero point.
    ``kind = avg`` (``QLinearAveragePool``): each in-bounds element of the window becomes
    ``e = f32(f32(in - in_zp) * s_in)``; ``s`` is their float32 sum from ``+0.0``, row by
    row (top to bottom), left to right, each addition rounded; ``count`` = window size if
    ``count_include_pad`` else the number of in-bounds elements; ``m = f32(s / count)``,
    ``v = f32(f32(m / s_out) + (out_zp + 128))``, ``out = sat8(round_half_even(v) - 128)``.
    ``kind = global_avg`` (``QLinearGlobalAveragePool``): ``acc = sum(in - in_zp)`` over
    the whole ``H x W`` plane (exact), ``scale = f32(s_in / f32(s_out * f32(H * W)))``,
    ``out = sat8(out_zp + round_half_even(f32(f32(acc) * scale)))`` (kernel, strides and
    pads are ignored); the output is ``[N, C, 1, 1]``.

    For ``max``/``avg`` the output is ``[N, C, OH, OW]`` with
    ``OH = (H + top + bottom - KH) // sh + 1``. Verified: output shape, pads smaller than
    the kernel, max keeps the input quantization.
    """

    name = "dnn.pool"

    input = operand_def(QTensorType)
    kind = prop_def(StringAttr)
    kernel = prop_def(DenseArrayBase)
    strides = prop_def(DenseArrayBase)
    pads = prop_def(DenseArrayBase)
    count_include_pad = opt_prop_def(UnitAttr)

    FIELDS: ClassVar[tuple[_Field, ...]] = (
        *_NAME_FIELDS,
        _Field("kind", "kind", "ident", None, POOL_KINDS),
        _Field("kernel", "kernel", "ints", (1, 1)),
        _Field("stride", "strides", "ints", (1, 1)),
        _Field("pad", "pads", "ints", (0, 0, 0, 0)),
        _Field("count_include_pad", "count_include_pad", "flag"),
    )

    def __init__(
        self,
        input: SSAValue | Operation,
        result_type: QTensorType,
        *,
        name: str,
        out: str,
        kind: str,
        kernel: Sequence[int] = (1, 1),
        strides: Sequence[int] = (1, 1),
        pads: Sequence[int] = (0, 0, 0, 0),
        count_include_pad: bool = False,
    ) -> None:
        props: dict[str, Attribute] = {
            "name": StringAttr(name),
            "out": StringAttr(out),
            "kind": StringAttr(kind),
            "kernel": int_array(kernel),
            "strides": int_array(strides),
            "pads": int_array(pads),
        }
        if count_include_pad:
            props["count_include_pad"] = UnitAttr()
        super().__init__(operands=[input], result_types=[result_type], properties=props)

    def verify_(self) -> None:
        who = self.label
        self._verify_placement()
        kind = self.kind.data
        if kind not in POOL_KINDS:
            raise VerifyException(f"{who}: kind '{kind}' is not one of {', '.join(POOL_KINDS)}")
        in_t = self.input_types()[0]
        in_shape, out_shape = in_t.get_shape(), self.output_type.get_shape()
        if len(in_shape) != 4 or len(out_shape) != 4:
            raise VerifyException(
                f"{who}: input and output must be 4-D NCHW, got {list(in_shape)} -> "
                f"{list(out_shape)}"
            )
        kernel, strides, pads = (
            int_tuple(self.kernel),
            int_tuple(self.strides),
            int_tuple(self.pads),
        )
        if len(kernel) != 2 or min(kernel) < 1:
            raise VerifyException(f"{who}: kernel must be 2 values >= 1, got {list(kernel)}")
        if len(strides) != 2 or min(strides) < 1:
            raise VerifyException(f"{who}: strides must be 2 values >= 1, got {list(strides)}")
        if len(pads) != 4 or min(pads) < 0:
            raise VerifyException(f"{who}: pads must be 4 values >= 0, got {list(pads)}")
        n, c, h, w = in_shape
        if kind == "global_avg":
            expected = (n, c, 1, 1)
        else:
            if max(pads[0], pads[2]) >= kernel[0] or max(pads[1], pads[3]) >= kernel[1]:
                raise VerifyException(
                    f"{who}: pads {list(pads)} must be smaller than the kernel {list(kernel)}"
                )
            oh = window_out(h, kernel[0], strides[0], pads[0], pads[2])
            ow = window_out(w, kernel[1], strides[1], pads[1], pads[3])
            if oh < 1 or ow < 1:
                raise VerifyException(
                    f"{who}: kernel {list(kernel)} does not fit the padded input {h}x{w}"
                )
            expected = (n, c, oh, ow)
        if out_shape != expected:
            raise VerifyException(
                f"{who}: output shape {list(out_shape)} does not match {kind} pooling, "
                f"expected {list(expected)}"
            )
        if kind == "max" and not in_t.same_quantization(self.output_type):
            raise VerifyException(
                f"{who}: max pooling must keep the input quantization (scale "
                f"{in_t.scale_value!r}, zp {in_t.zp}), output has scale "
                f"{self.output_type.scale_value!r}, zp {self.output_type.zp}"
            )

    def macs(self) -> int:
        """Pooling does no multiply-accumulates in the MAC array: 0."""
        return 0


@irdl_op_definition
class ResizeOp(DnnNodeOp):
    """Bilinear resize of an NCHW map (``QResize``; the RESIZE instruction, ISA version 4):
    onnxruntime's ``DequantizeLinear -> Resize(mode=linear) -> QuantizeLinear`` in its
    float32 steps (docs/isa.md, RESIZE; :mod:`vfpga.isa.resize`). Per output row ``o``
    (likewise per column) the source coordinate ``u`` of transformation ``coord`` with
    the float32 scale ``scale_h`` (``o`` itself when the scale is 1), clamped to the map,
    its neighbours ``trunc(u)`` and the next one (clamped) and weights ``d1 = |u - i1|``,
    ``d2 = |u - i2|``; ``v = dx2*dy2*X11 + dx1*dy2*X21 + dx2*dy1*X12 + dx1*dy1*X22`` on the
    dequantized inputs ``X = f32(f32(in - in_zp) * s_in)``, each step rounded to float32;
    ``out = sat8(out_zp + round_half_even(f32(v / s_out)))``.

    The output is ``[N, C, OH, OW]`` (any size: the result type says it). Verified: 4-D
    shapes with the input's batch and channels, ``coord`` one of
    :data:`RESIZE_COORDS`, finite positive scales."""

    name = "dnn.resize"

    input = operand_def(QTensorType)
    coord = prop_def(StringAttr)
    scale_h = prop_def(FloatAttr)
    scale_w = prop_def(FloatAttr)

    FIELDS: ClassVar[tuple[_Field, ...]] = (
        *_NAME_FIELDS,
        _Field("coord", "coord", "ident", None, RESIZE_COORDS),
        _Field("scale_h", "scale_h", "f32", None),
        _Field("scale_w", "scale_w", "f32", None),
    )

    def __init__(
        self,
        input: SSAValue | Operation,
        result_type: QTensorType,
        *,
        name: str,
        out: str,
        coord: str,
        scales: Sequence[float],
    ) -> None:
        props: dict[str, Attribute] = {
            "name": StringAttr(name),
            "out": StringAttr(out),
            "coord": StringAttr(coord),
            "scale_h": f32_attr(scales[0]),
            "scale_w": f32_attr(scales[1]),
        }
        super().__init__(operands=[input], result_types=[result_type], properties=props)

    def scale_pair(self) -> tuple[float, float]:
        """The float32 H and W scales."""
        return (float(self.scale_h.value.data), float(self.scale_w.value.data))

    def verify_(self) -> None:
        who = self.label
        self._verify_placement()
        if self.coord.data not in RESIZE_COORDS:
            raise VerifyException(
                f"{who}: coord '{self.coord.data}' is not one of {', '.join(RESIZE_COORDS)}")
        in_shape = self.input_types()[0].get_shape()
        out_shape = self.output_type.get_shape()
        if len(in_shape) != 4 or len(out_shape) != 4 or in_shape[:2] != out_shape[:2]:
            raise VerifyException(
                f"{who}: input and output must be 4-D NCHW with the same batch and channels, "
                f"got {list(in_shape)} -> {list(out_shape)}")
        for v in self.scale_pair():
            if not (np.isfinite(v) and v > 0):
                raise VerifyException(f"{who}: scales {list(self.scale_pair())} must be "
                                      "finite and > 0")

    def macs(self) -> int:
        """Interpolation does no multiply-accumulates in the MAC array: 0."""
        return 0


@irdl_op_definition
class AddOp(DnnNodeOp):
    """Element-wise add, multiply or subtract of two int8 tensors with their own
    quantization (``QAdd``), in float32 steps rounded to nearest even (``f32``; ``fma``
    rounds once). ``op = add`` (the default; ONNX Runtime's ``QLinearAdd``)::

        scale_a = f32(mult_a / 2**shift); scale_b = f32(mult_b / 2**shift)
        offset = f32(zc - fma(scale_a, za, f32(scale_b * zb)))
        v = fma(f32(a + 128), scale_a, fma(f32(b + 128), scale_b, offset))
        out = act(sat8(round_half_even(v) - 128))

    with the biased zero points ``za = a_zp + 128``, ``zb = b_zp + 128``,
    ``zc = out_zp + 128``. ``op = mul`` (``QLinearMul``'s vectorised MLAS kernel),
    ``scale_a``, ``scale_b`` as above (the operands' own scales)::

        ratio = f32(f32(scale_a * scale_b) / divisor)
        v = f32(f32(f32((a - a_zp) * (b - b_zp)) * ratio) + f32(out_zp + 128))
        out = act(sat8(round_half_even(v) - 128))

    ``op = sub`` (``DequantizeLinear -> Sub -> QuantizeLinear``)::

        va = f32(f32(a - a_zp) * scale_a); vb = f32(f32(b - b_zp) * scale_b)
        out = act(sat8(out_zp + round_half_even(f32(f32(va - vb) / divisor))))

    (``divisor`` is the output scale, negative for a sub whose operands were swapped).
    ``b`` has the shape of ``a`` or is per-channel ``[N, C, 1, 1]``, broadcast over the
    pixels.

    Verified: ``a`` and the output have the same shape, ``b`` that shape or
    ``[N, C, 1, 1]``; ``mult_a``, ``mult_b`` in ``[0, 2**31)``; ``shift`` in ``[0, 62]``;
    ``divisor`` finite and non-zero; activation range within int8.
    """

    name = "dnn.add"

    lhs = operand_def(QTensorType)
    rhs = operand_def(QTensorType)
    op = prop_def(StringAttr)
    mult_a = prop_def(IntegerAttr)
    mult_b = prop_def(IntegerAttr)
    shift = prop_def(IntegerAttr)
    divisor = opt_prop_def(FloatAttr)
    act = prop_def(StringAttr)
    act_range = prop_def(DenseArrayBase)

    FIELDS: ClassVar[tuple[_Field, ...]] = (
        *_NAME_FIELDS,
        _Field("op", "op", "ident", "add", ELT_KINDS),
        _Field("mult_a", "mult_a", "int"),
        _Field("mult_b", "mult_b", "int"),
        _Field("shift", "shift", "int"),
        _Field("divisor", "divisor", "f32", 1.0),
        _ACT_FIELD,
    )

    def __init__(
        self,
        a: SSAValue | Operation,
        b: SSAValue | Operation,
        result_type: QTensorType,
        *,
        name: str,
        out: str,
        mult_a: int,
        mult_b: int,
        shift: int,
        act: tuple[str, int, int] = ("none", -128, 127),
        op: str = "add",
        divisor: float = 1.0,
    ) -> None:
        extra = _divisor_prop(name, divisor)
        super().__init__(
            operands=[a, b],
            result_types=[result_type],
            properties={
                **extra,
                "name": StringAttr(name),
                "out": StringAttr(out),
                "op": StringAttr(op),
                "mult_a": i64_attr(mult_a),
                "mult_b": i64_attr(mult_b),
                "shift": i64_attr(shift),
                "act": StringAttr(act[0]),
                "act_range": int_array(act[1:]),
            },
        )

    @property
    def divisor_value(self) -> float:
        """The ``divisor`` as a Python float (a float32 value; ``1.0`` when absent)."""
        d = self.divisor
        return 1.0 if d is None else float(d.value.data)

    def verify_(self) -> None:
        who = self.label
        self._verify_placement()
        a, b = self.input_types()
        out = self.output_type
        sa, sb, so = list(a.get_shape()), list(b.get_shape()), list(out.get_shape())
        per_channel = len(sa) == 4 and sb == [sa[0], sa[1], 1, 1]
        if sa != so or (sb != sa and not per_channel):
            raise VerifyException(
                f"{who}: operand a and the result must have the same shape and b that shape "
                f"or [N, C, 1, 1], got {sa} + {sb} -> {so}"
            )
        if self.op.data not in ELT_KINDS:
            raise VerifyException(f"{who}: op must be one of {', '.join(ELT_KINDS)}, got "
                                  f"{self.op.data!r}")
        for key in ("mult_a", "mult_b"):
            v = cast(IntegerAttr, self.properties[key]).value.data
            _check_range(who, key, np.array(v, dtype=object), *_MULT_RANGE)
        s = self.shift.value.data
        _check_range(who, "shift", np.array(s, dtype=object), *_SHIFT_RANGE)
        d = self.divisor
        if d is not None:
            if not isinstance(d.type, Float32Type):
                raise VerifyException(f"{who}: divisor must be an f32 value, got {d.type}")
            dv = float(d.value.data)
            if not math.isfinite(dv) or dv == 0.0:
                raise VerifyException(f"{who}: divisor must be finite and non-zero, got {dv!r}")
        self._verify_act()

    def macs(self) -> int:
        """Element-wise: 0 multiply-accumulates in the MAC array."""
        return 0


@irdl_op_definition
class ConcatOp(DnnNodeOp):
    """Concatenation of its operands along ``axis`` (channels, 1, for NCHW) (``QConcat``).

    Every operand has the result's scale and zero point, so the op moves no data on the
    accelerator: producers write at offsets. Verified: at least one operand, equal rank,
    equal dims except ``axis``, the result's ``axis`` dim is the sum, same quantization.
    """

    name = "dnn.concat"

    inputs = var_operand_def(QTensorType)
    axis = prop_def(IntegerAttr)

    FIELDS: ClassVar[tuple[_Field, ...]] = (*_NAME_FIELDS, _Field("axis", "axis", "int", 1))

    def __init__(
        self,
        inputs: Sequence[SSAValue | Operation],
        result_type: QTensorType,
        *,
        name: str,
        out: str,
        axis: int = 1,
    ) -> None:
        super().__init__(
            operands=[list(inputs)],
            result_types=[result_type],
            properties={"name": StringAttr(name), "out": StringAttr(out), "axis": i64_attr(axis)},
        )

    def verify_(self) -> None:
        who = self.label
        self._verify_placement()
        ins = self.input_types()
        out = self.output_type
        if not ins:
            raise VerifyException(f"{who}: needs at least one operand")
        out_shape = out.get_shape()
        rank = len(out_shape)
        axis = self.axis.value.data
        if not -rank <= axis < rank:
            raise VerifyException(f"{who}: axis {axis} is out of range for rank {rank}")
        ax = axis % rank
        total = 0
        for i, t in enumerate(ins):
            s = t.get_shape()
            if len(s) != rank or any(s[d] != out_shape[d] for d in range(rank) if d != ax):
                raise VerifyException(
                    f"{who}: operand {i} has shape {list(s)}, incompatible with the result "
                    f"{list(out_shape)} along axis {axis}"
                )
            if not t.same_quantization(out):
                raise VerifyException(
                    f"{who}: operand {i} has scale {t.scale_value!r}, zp {t.zp}; every operand "
                    f"must have the result's scale {out.scale_value!r}, zp {out.zp}"
                )
            total += s[ax]
        if total != out_shape[ax]:
            raise VerifyException(
                f"{who}: operand sizes along axis {axis} sum to {total}, result has {out_shape[ax]}"
            )

    def macs(self) -> int:
        """Concatenation: 0 multiply-accumulates."""
        return 0


@irdl_op_definition
class ShuffleOp(DnnNodeOp):
    """Channel shuffle with ``groups`` groups (``QShuffle``; ShuffleNet's ``Reshape ->
    Transpose -> Reshape``).

    With ``C`` channels and ``m = C / groups``, for every ``n``, ``h``, ``w``::

        out[n, k, h, w] = in[n, (k % groups) * m + k // groups, h, w]

    so input channel ``i * m + j`` goes to output channel ``j * groups + i``
    (:func:`vfpga.frontend.qgraph.shuffle_perm` lists the gather indices; ``groups = 1``
    and ``groups = C`` are the identity). The int8 codes move unchanged: the result has the
    operand's shape, scale and zero point (an exact permutation). It costs nothing on the
    accelerator: the producer's SAVEs write its channels at their shuffled positions.

    Syntax: ``dnn.shuffle %x name "s" out "s" groups 4 : (T) -> T``. Verified: operand and
    result are 4-D NCHW, ``groups >= 1``, ``groups`` divides ``C``, and the result type
    equals the operand type (shape, scale and zero point).
    """

    name = "dnn.shuffle"

    input = operand_def(QTensorType)
    groups = prop_def(IntegerAttr)

    FIELDS: ClassVar[tuple[_Field, ...]] = (*_NAME_FIELDS, _Field("groups", "groups", "int"))

    def __init__(
        self,
        input: SSAValue | Operation,
        result_type: QTensorType,
        *,
        name: str,
        out: str,
        groups: int,
    ) -> None:
        super().__init__(operands=[input], result_types=[result_type],
                         properties=_named_int_props(name, out, "groups", groups))

    @property
    def groups_value(self) -> int:
        """``groups`` as a Python int."""
        return self.groups.value.data

    def perm(self) -> np.ndarray:
        """The gather indices ``p`` with ``out[:, k] = in[:, p[k]]`` (int64, a permutation
        of ``range(C)``); the op must verify."""
        c = self.input_types()[0].get_shape()[1]
        g = self.groups_value
        k = np.arange(c, dtype=np.int64)
        return (k % g) * (c // g) + k // g

    def verify_(self) -> None:
        who = self.label
        self._verify_placement()
        in_t = self.input_types()[0]
        out = self.output_type
        in_shape = in_t.get_shape()
        if len(in_shape) != 4 or len(out.get_shape()) != 4:
            raise VerifyException(
                f"{who}: input and output must be 4-D NCHW, got {list(in_shape)} -> "
                f"{list(out.get_shape())}"
            )
        groups = self.groups_value
        if groups < 1:
            raise VerifyException(f"{who}: groups must be >= 1, got {groups}")
        c = in_shape[1]
        if c % groups:
            raise VerifyException(f"{who}: {c} input channels are not divisible by groups {groups}")
        if out.get_shape() != in_shape:
            raise VerifyException(
                f"{who}: result shape {list(out.get_shape())} must equal the input shape "
                f"{list(in_shape)} (a shuffle only permutes channels)"
            )
        if not in_t.same_quantization(out):
            raise VerifyException(
                f"{who}: result has scale {out.scale_value!r}, zp {out.zp}; a shuffle keeps "
                f"the input's scale {in_t.scale_value!r}, zp {in_t.zp}"
            )

    def macs(self) -> int:
        """Channel permutation: 0 multiply-accumulates."""
        return 0


@irdl_op_definition
class SliceOp(DnnNodeOp):
    """A channel range of a map (``QSlice``; ONNX ``Split`` / ``Slice`` along channels,
    step 1). With the result's ``C`` channels, for every ``n``, ``h``, ``w``::

        out[n, k, h, w] = in[n, start + k, h, w]    (0 <= k < C)

    The int8 codes are not touched: the result has the operand's scale and zero point. It
    costs nothing on the accelerator: the result is a view of the operand's storage at
    channel offset ``start`` (``dnn-plan-memory`` gives it the operand's ``c_stride``), so
    its consumers' LOADs read that channel range in place.

    Syntax: ``dnn.slice %x name "s" out "s" start 8 : (T) -> U``. Verified: operand and
    result are 4-D NCHW with the same N, H, W; ``0 <= start`` and ``start + C`` at most
    the operand's channels; the same scale and zero point.
    """

    name = "dnn.slice"

    input = operand_def(QTensorType)
    start = prop_def(IntegerAttr)

    FIELDS: ClassVar[tuple[_Field, ...]] = (*_NAME_FIELDS, _Field("start", "start", "int"))

    def __init__(
        self,
        input: SSAValue | Operation,
        result_type: QTensorType,
        *,
        name: str,
        out: str,
        start: int,
    ) -> None:
        super().__init__(operands=[input], result_types=[result_type],
                         properties=_named_int_props(name, out, "start", start))

    @property
    def start_value(self) -> int:
        """``start`` as a Python int."""
        return self.start.value.data

    def verify_(self) -> None:
        who = self.label
        self._verify_placement()
        in_t = self.input_types()[0]
        out = self.output_type
        in_shape, out_shape = in_t.get_shape(), out.get_shape()
        if len(in_shape) != 4 or len(out_shape) != 4:
            raise VerifyException(
                f"{who}: input and output must be 4-D NCHW, got {list(in_shape)} -> "
                f"{list(out_shape)}"
            )
        if (in_shape[0], *in_shape[2:]) != (out_shape[0], *out_shape[2:]):
            raise VerifyException(
                f"{who}: result shape {list(out_shape)} must keep the input's N, H, W "
                f"{list(in_shape)} (a slice takes channels only)"
            )
        start = self.start_value
        if start < 0 or out_shape[1] < 1 or start + out_shape[1] > in_shape[1]:
            raise VerifyException(
                f"{who}: channels [{start}, {start + out_shape[1]}) are not a non-empty range "
                f"of the input's {in_shape[1]} channels"
            )
        if not in_t.same_quantization(out):
            raise VerifyException(
                f"{who}: result has scale {out.scale_value!r}, zp {out.zp}; a slice keeps "
                f"the input's scale {in_t.scale_value!r}, zp {in_t.zp}"
            )

    def macs(self) -> int:
        """Channel range (a view): 0 multiply-accumulates."""
        return 0


@irdl_op_definition
class HostOp(DnnNodeOp):
    """An op run on the host CPU in float32 (``QHostOp``): the operands are dequantized,
    the ONNX op ``op_type`` runs with attributes ``attrs`` (a dictionary of builtin
    attributes), and the result is quantized with the result type's quantization — unless
    ``output_float`` is set, in which case the graph output stays float32.

    Verified: ``op_type`` is not empty.
    """

    name = "dnn.host"

    inputs = var_operand_def(QTensorType)
    op_type = prop_def(StringAttr)
    attrs = prop_def(DictionaryAttr)
    output_float = opt_prop_def(UnitAttr)

    FIELDS: ClassVar[tuple[_Field, ...]] = (
        *_NAME_FIELDS,
        _Field("op", "op_type", "str"),
        _Field("attrs", "attrs", "dict", DictionaryAttr({})),
        _Field("output_float", "output_float", "flag"),
    )

    def __init__(
        self,
        inputs: Sequence[SSAValue | Operation],
        result_type: QTensorType,
        *,
        name: str,
        out: str,
        op_type: str,
        attrs: Mapping[str, Attribute] | DictionaryAttr | None = None,
        output_float: bool = False,
    ) -> None:
        if not isinstance(attrs, DictionaryAttr):
            attrs = DictionaryAttr(dict(attrs or {}))
        props: dict[str, Attribute] = {
            "name": StringAttr(name),
            "out": StringAttr(out),
            "op_type": StringAttr(op_type),
            "attrs": attrs,
        }
        if output_float:
            props["output_float"] = UnitAttr()
        super().__init__(operands=[list(inputs)], result_types=[result_type], properties=props)

    def verify_(self) -> None:
        self._verify_placement()
        if not self.op_type.data:
            raise VerifyException(f"{self.label}: op_type must not be empty")

    def macs(self) -> int:
        """MACs of a host matrix product (``MatMul``/``Gemm``: ``batch * M * K * N`` from the
        operand and result shapes); 0 for every other host op."""
        if self.op_type.data not in ("MatMul", "Gemm") or not self.operands:
            return 0
        a = self.input_types()[0].get_shape()
        out = self.output_type.get_shape()
        if len(a) < 2 or len(out) < 2:
            return 0
        k = a[0] if self.op_type.data == "Gemm" and _attr_int(self.attrs, "transA") else a[-1]
        return math.prod(out) * k


def _attr_int(d: DictionaryAttr, key: str) -> int:
    v = d.data.get(key)
    return v.value.data if isinstance(v, IntegerAttr) else 0


# --------------------------------------------------------------------------------------
# Graph structure
# --------------------------------------------------------------------------------------


@irdl_op_definition
class GraphOp(IRDLOperation):
    """A quantized network (``QGraph``): a symbol named after the graph with one block.

    The block arguments are the graph inputs (``!dnn.qtensor`` values; their tensor names
    are ``input_names``), the block holds the node ops in execution order and ends with
    ``dnn.return``. Syntax::

        dnn.graph @name(%x: !dnn.qtensor<...> as "x", ...) attributes {...}? { ... }

    Verified: one block, arguments match ``input_names``, only ``dnn`` node ops before the
    terminator, and tensor names (inputs and node ``out`` names) are unique.
    """

    name = "dnn.graph"

    sym_name = prop_def(StringAttr)
    input_names = prop_def(ArrayAttr[StringAttr])
    body = region_def("single_block")

    traits = traits_def(IsolatedFromAbove(), SymbolOpInterface())

    def __init__(
        self,
        name: str,
        input_types: Sequence[QTensorType],
        input_names: Sequence[str],
        region: Region | None = None,
    ) -> None:
        if region is None:
            region = Region(Block(arg_types=input_types))
        super().__init__(
            properties={
                "sym_name": StringAttr(name),
                "input_names": ArrayAttr(StringAttr(n) for n in input_names),
            },
            regions=[region],
        )

    @property
    def block(self) -> Block:
        """The graph's single block."""
        return self.body.block

    def return_op(self) -> ReturnOp:
        """The terminator."""
        last = self.block.last_op
        if not isinstance(last, ReturnOp):
            raise VerifyException(f"dnn.graph @{self.sym_name.data}: body must end with dnn.return")
        return last

    def node_ops(self) -> list[DnnNodeOp]:
        """The node ops in execution order."""
        return [op for op in self.block.ops if isinstance(op, DnnNodeOp)]

    def verify_(self) -> None:
        who = f"dnn.graph @{self.sym_name.data}"
        blk = self.body.block
        names = [n.data for n in self.input_names.data]
        if len(names) != len(blk.args):
            raise VerifyException(
                f"{who}: {len(blk.args)} block arguments but {len(names)} input names"
            )
        if not names:
            raise VerifyException(f"{who}: a graph needs at least one input")
        seen: set[str] = set()
        for n in names:
            if n in seen:
                raise VerifyException(f"{who}: tensor name '{n}' is defined twice")
            seen.add(n)
        self.return_op()
        for op in blk.ops:
            if isinstance(op, ReturnOp):
                continue
            if not isinstance(op, DnnNodeOp):
                raise VerifyException(f"{who}: '{op.name}' is not a dnn node op")
            out = op.out_name.data
            if out in seen:
                raise VerifyException(f"{who}: tensor name '{out}' is defined twice ({op.label})")
            seen.add(out)

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_symbol_name(self.sym_name.data)

        def arg(i: int) -> None:
            printer.print_block_argument(self.block.args[i])
            printer.print_string(" as ")
            printer.print_string_literal(self.input_names.data[i].data)

        printer.print_string("(")
        printer.print_list(range(len(self.block.args)), arg)
        printer.print_string(")")
        printer.print_op_attributes(self.attributes, print_keyword=True)
        printer.print_string(" ")
        printer.print_region(self.body, print_entry_block_args=False)

    @classmethod
    def parse(cls, parser: Parser) -> GraphOp:
        name = parser.parse_symbol_name()
        args: list[Parser.Argument] = []
        names: list[StringAttr] = []

        def one() -> None:
            args.append(parser.parse_argument())
            parser.parse_keyword("as", " after a dnn.graph argument type")
            names.append(StringAttr(parser.parse_str_literal(" (the input tensor name)")))

        parser.parse_comma_separated_list(parser.Delimiter.PAREN, one)
        attrs = parser.parse_optional_attr_dict_with_keyword()
        region = parser.parse_region(args)
        op = cls.create(
            properties={"sym_name": name, "input_names": ArrayAttr(names)}, regions=[region]
        )
        if attrs is not None:
            op.attributes.update(attrs.data)
        return op


@irdl_op_definition
class ReturnOp(IRDLOperation):
    """Terminator of ``dnn.graph``: its operands are the graph outputs, in order.

    ``reshapes`` holds, per output, the ONNX shape of that graph output when it differs
    from the 4-D tensor shape (``QGraph.output_shapes``, e.g. ``[1, 1000]`` for a
    ``1x1000x1x1`` classifier) or an empty array. Syntax:
    ``dnn.return %a reshape [1, 1000], %b : !dnn.qtensor<...>, !dnn.qtensor<...>``.
    Verified: one reshape entry per output, and each reshape keeps the element count.
    """

    name = "dnn.return"

    outputs = var_operand_def(QTensorType)
    reshapes = prop_def(ArrayAttr[DenseArrayBase])

    traits = traits_def(IsTerminator(), HasParent(GraphOp))

    def __init__(
        self,
        outputs: Sequence[SSAValue | Operation],
        reshapes: Sequence[Sequence[int] | None] | None = None,
    ) -> None:
        if reshapes is None:
            reshapes = [None] * len(outputs)
        super().__init__(
            operands=[list(outputs)],
            properties={"reshapes": ArrayAttr(int_array(r or ()) for r in reshapes)},
        )

    def reshape_of(self, index: int) -> tuple[int, ...] | None:
        """The ONNX shape of output ``index``, or None when it is the tensor's own shape."""
        r = int_tuple(self.reshapes.data[index])
        return r or None

    def verify_(self) -> None:
        if not self.outputs:
            raise VerifyException("dnn.return: a graph needs at least one output")
        if len(self.reshapes.data) != len(self.outputs):
            raise VerifyException(
                f"dnn.return: {len(self.outputs)} outputs but {len(self.reshapes.data)} reshape "
                "entries"
            )
        for i, v in enumerate(self.outputs):
            r = self.reshape_of(i)
            t = cast(QTensorType, v.type)
            if r is not None and (min(r) < 1 or math.prod(r) != t.num_elements()):
                raise VerifyException(
                    f"dnn.return: output {i} reshape {list(r)} does not keep the "
                    f"{t.num_elements()} elements of {list(t.get_shape())}"
                )

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")

        def one(i: int) -> None:
            printer.print_operand(self.outputs[i])
            r = self.reshape_of(i)
            if r is not None:
                printer.print_string(" reshape ")
                _print_ints(printer, r)

        printer.print_list(range(len(self.outputs)), one)
        if self.attributes:
            printer.print_string(" ")
            printer.print_attr_dict(self.attributes)
        printer.print_string(" : ")
        printer.print_list(self.outputs, lambda v: printer.print_attribute(v.type))

    @classmethod
    def parse(cls, parser: Parser) -> ReturnOp:
        pos = parser.pos
        operands: list[UnresolvedOperand] = []
        reshapes: list[DenseArrayBase] = []

        def one() -> None:
            operands.append(parser.parse_unresolved_operand())
            if parser.parse_optional_keyword("reshape") is not None:
                reshapes.append(int_array(_parse_ints(parser)))
            else:
                reshapes.append(int_array(()))

        one()
        while parser.parse_optional_punctuation(",") is not None:
            one()
        attributes = parser.parse_optional_attr_dict()
        parser.parse_punctuation(":", " before the dnn.return types")
        type_pos = parser.pos
        types = parser.parse_comma_separated_list(parser.Delimiter.NONE, parser.parse_type)
        if len(types) != len(operands):
            parser.raise_error(
                f"dnn.return: {len(operands)} operands but {len(types)} types", type_pos, parser.pos
            )
        values = parser.resolve_operands(operands, types, pos)
        return cls.create(
            operands=values, properties={"reshapes": ArrayAttr(reshapes)}, attributes=attributes
        )


Dnn = Dialect(
    "dnn",
    [GraphOp, ReturnOp, ConvOp, PoolOp, AddOp, ConcatOp, ShuffleOp, SliceOp, HostOp, ResizeOp],
    [QTensorType],
)
"""The ``dnn`` dialect."""

NODE_OPS: tuple[type[DnnNodeOp], ...] = (
    ConvOp, PoolOp, AddOp, ConcatOp, ShuffleOp, SliceOp, HostOp, ResizeOp
)
"""Every node op class."""
