"""The ``.vfb`` binary container (normative description: ``docs/binary-format.md``).

A ``.vfb`` file is one compiled model for one hardware configuration::

    header (96 bytes) | section directory (24 bytes per section) | sections | SHA-256 trailer

Every section starts at a multiple of :data:`SECTION_ALIGN` bytes (the gaps are zero bytes).
The trailer is the SHA-256 of every byte before it. All integers are little-endian. Record
tables are numpy structured dtypes with explicit little-endian fields, so each table reads
with one ``np.frombuffer``; the field tables below (:data:`HEADER_FIELDS`,
:data:`IFP_FIELDS`, ...) are the single source of the dtypes and of the tables in
``docs/binary-format.md``.

:func:`to_bytes` / :func:`from_bytes` convert between a :class:`VfbFile` and bytes;
:func:`write_vfb` writes atomically; :func:`read_vfb` reads and fully checks a file;
:func:`read_ifp_table` reads only the header, the directory and the IFP table (for the
dynamic re-targeting pass, which must not touch the weights).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any

import numpy as np

from vfpga.errors import BinaryFormatError, DecodeError
from vfpga.hw.config import BUFFER_NAMES, ISA_VERSION, HardwareConfig
from vfpga.isa.codec import Program, decode
from vfpga.isa.limits import MAX_CORES
from vfpga.isa.spec import INSN_BYTES, Field, Opcode

#: File magic, bytes 0..7.
MAGIC = b"VFPGABIN"
#: Container format version this module reads and writes.
FORMAT_VERSION = 1
#: Size of the fixed header.
HEADER_BYTES = 96
#: Size of one section-directory entry.
DIR_ENTRY_BYTES = 24
#: Alignment of every section's start offset.
SECTION_ALIGN = 64
#: Size of the SHA-256 trailer.
TRAILER_BYTES = 32
#: Longest hardware name the header holds (UTF-8 bytes, NUL padded).
HW_NAME_BYTES = 16
#: ``HostOp.after_layer`` value meaning "before the first layer".
BEFORE_FIRST_LAYER = 0xFFFFFFFF
#: Most inputs / outputs of one host op.
MAX_HOST_IO = 4
#: Most dimensions of a tensor in the memory map.
MAX_RANK = 4

#: Layer kinds, by their code in the LAYERS record.
LAYER_KINDS: tuple[str, ...] = ("conv", "pool", "eltwise", "concat", "host", "other", "resize")
#: Tensor roles, by code.
TENSOR_ROLES: tuple[str, ...] = ("input", "output", "activation", "constant")
#: Tensor element types, by code.
TENSOR_DTYPES: tuple[str, ...] = ("int8", "int32", "float32", "int64")
#: Bytes per element of each tensor dtype.
TENSOR_ITEMSIZE: dict[str, int] = {"int8": 1, "int32": 4, "float32": 4, "int64": 8}
#: Bytes per element of each tensor element type.
DTYPE_BYTES: dict[str, int] = {"int8": 1, "int32": 4, "float32": 4, "int64": 8}
#: Tensor layouts, by code.
TENSOR_LAYOUTS: tuple[str, ...] = ("nhwc", "nchw", "raw")
#: On-chip buffers whose usage each IFP records, in record order.
IFP_BUFFERS: tuple[str, ...] = ("ibuf", "wbuf", "pbuf", "obuf", "abuf")


class SectionKind(IntEnum):
    """Section kinds of the directory. Every kind appears exactly once in a file."""

    PROGRAM = 1
    LAYERS = 2
    IFPS = 3
    TEXT = 4
    DATA = 5
    TENSORS = 6
    HOSTOPS = 7
    STRTAB = 8
    DISPATCH = 9


#: Order in which the writer lays out the sections: small tables first, so that
#: :func:`read_ifp_table` reads only the beginning of the file.
SECTION_ORDER: tuple[SectionKind, ...] = (
    SectionKind.PROGRAM,
    SectionKind.LAYERS,
    SectionKind.IFPS,
    SectionKind.DISPATCH,
    SectionKind.TENSORS,
    SectionKind.HOSTOPS,
    SectionKind.STRTAB,
    SectionKind.TEXT,
    SectionKind.DATA,
)

#: One-line description of each section (used by docs and objdump).
SECTION_DOCS: dict[SectionKind, str] = {
    SectionKind.PROGRAM: "One PROGRAM record: DDR size, DATA placement, counts, ISA version.",
    SectionKind.LAYERS: "LAYER records, one per layer, in layer-index order.",
    SectionKind.IFPS: "IFP records (instruction frame packages), grouped by layer.",
    SectionKind.TEXT: "The instruction blob: n x 64-byte words (docs/isa.md).",
    SectionKind.DATA: "Constant blob (weights, parameter records) copied to DDR at "
    "data_offset when the binary is loaded.",
    SectionKind.TENSORS: "TENSOR records: the DDR memory map.",
    SectionKind.HOSTOPS: "HOSTOP records: operators run on the host CPU.",
    SectionKind.STRTAB: "String table: NUL-terminated UTF-8 strings; offset 0 is the empty "
    "string.",
    SectionKind.DISPATCH: "DISPATCH records: per logical core, the IFPs it runs and its "
    "layer barriers, in order. Empty: instructions are routed by their core field and TEXT "
    "holds the SYNC and END instructions.",
}


def _record_dtype(fields: Sequence[Field], itemsize: int) -> np.dtype:
    return np.dtype(
        {
            "names": [f.name for f in fields],
            "formats": [f.np_type for f in fields],
            "offsets": [f.offset for f in fields],
            "itemsize": itemsize,
        }
    )


HEADER_FIELDS: tuple[Field, ...] = (
    Field("magic", "S8", 0, 'File magic, the 8 ASCII bytes "VFPGABIN".'),
    Field("version", "<u4", 8, f"Container format version ({FORMAT_VERSION})."),
    Field("flags", "<u4", 12, "Header flags; none are defined, must be 0."),
    Field("fingerprint", "(32,)u1", 16, "HardwareConfig.fingerprint of the hardware the "
          "binary was compiled for (SHA-256)."),
    Field("hw_name", "S16", 48, "Name of that hardware configuration, UTF-8, NUL padded."),
    Field("file_size", "<u8", 64, "Total file size in bytes, trailer included."),
    Field("section_count", "<u4", 72, "Number of section-directory entries (8)."),
    Field("dir_offset", "<u4", 76, f"Byte offset of the section directory ({HEADER_BYTES})."),
    Field("reserved", "(16,)u1", 80, "Reserved, must be 0."),
)
HEADER_DTYPE = _record_dtype(HEADER_FIELDS, HEADER_BYTES)

DIR_FIELDS: tuple[Field, ...] = (
    Field("kind", "<u4", 0, "Section kind (SectionKind: 1 PROGRAM, 2 LAYERS, 3 IFPS, 4 TEXT, "
          "5 DATA, 6 TENSORS, 7 HOSTOPS, 8 STRTAB, 9 DISPATCH)."),
    Field("reserved", "<u4", 4, "Reserved, must be 0."),
    Field("offset", "<u8", 8, f"Byte offset of the section, a multiple of {SECTION_ALIGN}."),
    Field("size", "<u8", 16, "Size of the section in bytes (a multiple of its record size)."),
)
DIR_DTYPE = _record_dtype(DIR_FIELDS, DIR_ENTRY_BYTES)

PROGRAM_FIELDS: tuple[Field, ...] = (
    Field("ddr_size", "<u8", 0, "Bytes of tenant DDR the program needs (its region bound); "
          "the tensors and the DATA blob lie in [0, ddr_size)."),
    Field("data_offset", "<u8", 8, "Tenant DDR offset where the DATA blob is placed."),
    Field("num_layers", "<u4", 16, "Number of LAYER records."),
    Field("num_cores", "<u4", 20, "Number of logical cores the program uses (1..64): with an "
          "empty DISPATCH table every instruction's and IFP's core index is below it; with a "
          "dispatch table, the cores the table names (bodies' core fields are ignored)."),
    Field("isa_version", "<u4", 24, f"Instruction-set version of TEXT ({ISA_VERSION})."),
    Field("io_shapes", "<u4", 28, "String-table offset of a JSON object giving the ONNX "
          "shape of each graph input and output whose shape differs from the one its TENSOR "
          "record gives users (section TENSORS); 0 (the empty string): none does."),
)
PROGRAM_DTYPE = _record_dtype(PROGRAM_FIELDS, 32)

LAYER_FIELDS: tuple[Field, ...] = (
    Field("name", "<u4", 0, "String-table offset of the layer's name."),
    Field("kind", "u1", 4, "Kind: 0 conv, 1 pool, 2 eltwise, 3 concat, 4 host, 5 other, "
          "6 resize (ISA version 4)."),
    Field("reserved", "(3,)u1", 5, "Reserved, must be 0."),
    Field("first_ifp", "<u4", 8, "Index of the layer's first IFP record."),
    Field("ifp_count", "<u4", 12, "Number of IFP records of the layer (all tiling candidates); "
          "each has layer == this layer's index."),
    Field("macs", "<u8", 16, "Multiply-accumulates of the layer."),
)
LAYER_DTYPE = _record_dtype(LAYER_FIELDS, 24)

IFP_FIELDS: tuple[Field, ...] = (
    Field("layer", "<u4", 0, "Index of the layer the IFP computes a tile of."),
    Field("candidate", "<u2", 4, "Tiling candidate id within the layer (0 if only one)."),
    Field("core", "<u2", 6, "Default logical core (the static assignment for the "
          "compile-time core count; informative once a dispatch table re-targets the IFP)."),
    Field("w0", "<u2", 8, "Output tile: first column (inclusive)."),
    Field("w1", "<u2", 10, "Output tile: end column (exclusive)."),
    Field("c0", "<u2", 12, "Output tile: first output channel (inclusive)."),
    Field("c1", "<u2", 14, "Output tile: end output channel (exclusive)."),
    Field("h0", "<u2", 16, "Output tile: first row (inclusive)."),
    Field("h1", "<u2", 18, "Output tile: end row (exclusive)."),
    Field("insn_offset", "<u4", 20, "Index in TEXT of the IFP's first instruction."),
    Field("insn_count", "<u4", 24, "Number of consecutive instructions of the IFP."),
    Field("reserved", "<u4", 28, "Reserved, must be 0."),
    Field("latency", "<u8", 32, "Predicted latency of the IFP alone on a core, in cycles."),
    Field("ibuf", "<u4", 40, "ibuf bytes the IFP uses."),
    Field("wbuf", "<u4", 44, "wbuf bytes the IFP uses."),
    Field("pbuf", "<u4", 48, "pbuf bytes the IFP uses."),
    Field("obuf", "<u4", 52, "obuf bytes the IFP uses."),
    Field("abuf", "<u4", 56, "abuf bytes the IFP uses."),
    Field("reserved2", "<u4", 60, "Reserved, must be 0."),
)
IFP_DTYPE = _record_dtype(IFP_FIELDS, 64)

TENSOR_FIELDS: tuple[Field, ...] = (
    Field("name", "<u4", 0, "String-table offset of the tensor's name."),
    Field("role", "u1", 4, "Role: 0 input, 1 output, 2 activation, 3 constant."),
    Field("dtype", "u1", 5, "Element type: 0 int8, 1 int32, 2 float32, 3 int64."),
    Field("layout", "u1", 6, "Layout: 0 nhwc, 1 nchw, 2 raw."),
    Field("rank", "u1", 7, "Number of dimensions (0..4)."),
    Field("shape", "(4,)<u4", 8, "Dimensions; entries at and after rank are 0."),
    Field("ddr_offset", "<u8", 24, "Tenant DDR offset of the tensor's first byte."),
    Field("size", "<u8", 32, "Bytes the tensor occupies; ddr_offset + size <= ddr_size."),
    Field("scale", "<f4", 40, "Quantization scale (real = scale * (q - zero_point)); 1.0 "
          "if not quantized."),
    Field("zero_point", "<i4", 44, "Quantization zero point."),
)
TENSOR_DTYPE = _record_dtype(TENSOR_FIELDS, 48)

HOSTOP_FIELDS: tuple[Field, ...] = (
    Field("name", "<u4", 0, "String-table offset of the op's name."),
    Field("op_type", "<u4", 4, "String-table offset of the ONNX op type (Softmax, LRN, ...)."),
    Field("attrs", "<u4", 8, "String-table offset of the attributes, a JSON object "
          "(canonical: sorted keys, no spaces)."),
    Field("after_layer", "<u4", 12, "The op runs after this layer's barrier "
          "(0xFFFFFFFF: before the first layer)."),
    Field("n_inputs", "u1", 16, f"Number of inputs (0..{MAX_HOST_IO})."),
    Field("n_outputs", "u1", 17, f"Number of outputs (0..{MAX_HOST_IO})."),
    Field("reserved", "(2,)u1", 18, "Reserved, must be 0."),
    Field("inputs", f"({MAX_HOST_IO},)<u4", 20, "Input tensor indices (TENSORS); unused "
          "entries 0."),
    Field("outputs", f"({MAX_HOST_IO},)<u4", 36, "Output tensor indices; unused entries 0."),
    Field("reserved2", "<u4", 52, "Reserved, must be 0."),
)
HOSTOP_DTYPE = _record_dtype(HOSTOP_FIELDS, 56)

#: Kinds of DISPATCH entries, by code.
DISPATCH_KINDS: tuple[str, ...] = ("ifp", "sync", "end")

DISPATCH_FIELDS: tuple[Field, ...] = (
    Field("core", "<u2", 0, "Logical core the entry is dispatched to (below num_cores)."),
    Field("kind", "u1", 2, "0 IFP: run the IFP's instructions; 1 SYNC: barrier of layer "
          "`arg`; 2 END: the core's program ends."),
    Field("reserved", "u1", 3, "Reserved, must be 0."),
    Field("arg", "<u4", 4, "IFP index (IFP), layer index (SYNC), 0 (END)."),
)
DISPATCH_DTYPE = _record_dtype(DISPATCH_FIELDS, 8)

#: Record dtype of each record-table section (TEXT, DATA and STRTAB are byte blobs).
SECTION_DTYPES: dict[SectionKind, np.dtype] = {
    SectionKind.PROGRAM: PROGRAM_DTYPE,
    SectionKind.LAYERS: LAYER_DTYPE,
    SectionKind.IFPS: IFP_DTYPE,
    SectionKind.TENSORS: TENSOR_DTYPE,
    SectionKind.HOSTOPS: HOSTOP_DTYPE,
    SectionKind.DISPATCH: DISPATCH_DTYPE,
}

#: Field tables of the documented records, in documentation order.
RECORD_TABLES: dict[str, tuple[tuple[Field, ...], int]] = {
    "header": (HEADER_FIELDS, HEADER_BYTES),
    "directory entry": (DIR_FIELDS, DIR_ENTRY_BYTES),
    "PROGRAM": (PROGRAM_FIELDS, PROGRAM_DTYPE.itemsize),
    "LAYER": (LAYER_FIELDS, LAYER_DTYPE.itemsize),
    "IFP": (IFP_FIELDS, IFP_DTYPE.itemsize),
    "TENSOR": (TENSOR_FIELDS, TENSOR_DTYPE.itemsize),
    "HOSTOP": (HOSTOP_FIELDS, HOSTOP_DTYPE.itemsize),
    "DISPATCH": (DISPATCH_FIELDS, DISPATCH_DTYPE.itemsize),
}


# --------------------------------------------------------------------------- model
@dataclass
class Layer:
    """One layer: ``name``, ``kind`` (one of :data:`LAYER_KINDS`), ``macs``, and the range
    ``[first_ifp, first_ifp + ifp_count)`` of its IFP records."""

    name: str
    kind: str
    macs: int = 0
    first_ifp: int = 0
    ifp_count: int = 0


@dataclass
class Tensor:
    """One entry of the DDR memory map. ``role`` in :data:`TENSOR_ROLES`, ``dtype`` in
    :data:`TENSOR_DTYPES`, ``layout`` in :data:`TENSOR_LAYOUTS`; the tensor occupies tenant
    DDR bytes ``[ddr_offset, ddr_offset + size)``."""

    name: str
    role: str
    dtype: str
    layout: str
    shape: tuple[int, ...]
    ddr_offset: int
    size: int
    scale: float = 1.0
    zero_point: int = 0
    #: the ONNX shape users see for a graph input or output when it differs from the one
    #: the stored shape gives (``vfpga.emulator.tensor_layout.user_shape``): a row-major
    #: reshape of the NCHW elements, e.g. ``(N, C, L)`` for the map ``(N, C, 1, L)``
    #: (PROGRAM ``io_shapes``); ``None``: the stored shape's
    onnx_shape: tuple[int, ...] | None = None

    @property
    def dynamic(self) -> bool:
        """A graph output whose shape the data decides (a host segment's result such as
        NonMaxSuppression's boxes): layout ``raw``, a 0 for each data-dependent dimension,
        size 0; not in DDR, the runtime keeps the host's result as it is."""
        return self.role == "output" and self.layout == "raw" and self.size == 0 and (
            0 in self.shape)


def record_user_shape(t: Any) -> tuple[int, ...]:
    """The shape users see for tensor ``t`` from its TENSOR record alone (without
    ``onnx_shape``): NCHW for a stored NHWC map, ``(N, C)`` for an output map of 1x1
    pixels (an ONNX classifier's output), else the stored shape."""
    if t.layout != "nhwc" or len(t.shape) != 4:
        return tuple(t.shape)
    n, h, w, c = t.shape
    if t.role == "output" and (h, w) == (1, 1):
        return (n, c)
    return (n, c, h, w)


@dataclass
class HostOp:
    """An operator run on the host after layer ``after_layer``'s barrier
    (:data:`BEFORE_FIRST_LAYER`: before any layer). ``inputs`` / ``outputs`` are indices
    into the tensor table; ``attrs`` is a JSON-compatible dict."""

    name: str
    op_type: str
    after_layer: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict)


def empty_dispatch(n: int = 0) -> np.ndarray:
    """A zero-filled dispatch table of ``n`` entries (dtype :data:`DISPATCH_DTYPE`)."""
    return np.zeros(n, dtype=DISPATCH_DTYPE)


def empty_ifps(n: int = 0) -> np.ndarray:
    """A zero-filled IFP table of ``n`` records (dtype :data:`IFP_DTYPE`)."""
    return np.zeros(n, dtype=IFP_DTYPE)


@dataclass(eq=False)
class VfbFile:
    """A compiled program, as held in a ``.vfb`` file.

    ``hw_name`` / ``hw_fingerprint``: the hardware it was compiled for
    (:attr:`HardwareConfig.name` / :attr:`HardwareConfig.fingerprint`). ``ddr_size``: tenant
    DDR bytes needed. ``data_offset``: where ``data`` goes in tenant DDR. ``num_cores``:
    logical cores used. ``text``: the instruction blob (64 bytes per instruction).
    ``ifps``: the IFP table, a structured array of dtype :data:`IFP_DTYPE` (fields as in
    :data:`IFP_FIELDS`). ``layers`` / ``tensors`` / ``host_ops``: the other tables.
    ``data``: the constant blob. :attr:`program` is ``text`` decoded (cached until
    ``text`` is replaced).
    """

    hw_name: str
    hw_fingerprint: bytes
    ddr_size: int
    data_offset: int
    num_cores: int
    text: bytes
    ifps: np.ndarray
    layers: list[Layer] = field(default_factory=list)
    tensors: list[Tensor] = field(default_factory=list)
    host_ops: list[HostOp] = field(default_factory=list)
    data: bytes = b""
    isa_version: int = ISA_VERSION
    dispatch: np.ndarray = field(default_factory=empty_dispatch)
    _program: tuple[bytes, Program] | None = field(default=None, repr=False)

    @classmethod
    def for_hw(cls, hw: HardwareConfig, **kwargs: Any) -> VfbFile:
        """A VfbFile for hardware ``hw`` (name and fingerprint filled in)."""
        return cls(hw_name=hw.name, hw_fingerprint=hw.fingerprint, **kwargs)

    @property
    def program(self) -> Program:
        """``text`` decoded with :func:`vfpga.isa.codec.decode` (computed once)."""
        if self._program is None or self._program[0] is not self.text:
            self._program = (self.text, decode(self.text))
        return self._program[1]

    @property
    def num_insns(self) -> int:
        """Number of instructions in ``text``."""
        return len(self.text) // INSN_BYTES

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def ifp_text(self, i: int) -> bytes:
        """The instruction words of IFP ``i``."""
        off = int(self.ifps["insn_offset"][i]) * INSN_BYTES
        return self.text[off : off + int(self.ifps["insn_count"][i]) * INSN_BYTES]

    def tensor_index(self, name: str) -> int:
        """Index of the tensor called ``name`` (KeyError if none)."""
        for i, t in enumerate(self.tensors):
            if t.name == name:
                return i
        raise KeyError(name)


# ------------------------------------------------------------------ validation
def _validate_dispatch(vfb: VfbFile, source: str, n_ifps: int, n_layers: int) -> None:
    """A dispatch table names existing IFPs and layers, and every core in it ends with
    exactly one END; TEXT then holds no SYNC or END (the dispatcher issues them)."""
    d = vfb.dispatch
    if not isinstance(d, np.ndarray) or d.dtype != DISPATCH_DTYPE or d.ndim != 1:
        raise _fail(source, "the dispatch table must be a 1-D array of dtype DISPATCH_DTYPE")
    if not d.size:
        return
    checks: list[tuple[np.ndarray, str]] = [
        (d["kind"] > 2, "unknown kind"),
        (d["core"] >= vfb.num_cores, f"core is not below num_cores ({vfb.num_cores})"),
        ((d["kind"] == 0) & (d["arg"] >= n_ifps), f"IFP index is not below {n_ifps}"),
        ((d["kind"] == 1) & (d["arg"] >= max(n_layers, 1)), "layer index out of range"),
        (d["reserved"] != 0, "reserved field is not 0"),
    ]
    for mask, what in checks:
        bad = np.flatnonzero(mask)
        if bad.size:
            i = int(bad[0])
            raise _fail(source, f"dispatch entry #{i} (core {int(d['core'][i])}, kind "
                        f"{int(d['kind'][i])}, arg {int(d['arg'][i])}): {what}")
    for c in np.unique(d["core"]).tolist():
        kinds = d["kind"][d["core"] == c]
        if int((kinds == 2).sum()) != 1 or int(kinds[-1]) != 2:
            raise _fail(source, f"dispatch table: core {c}'s entries must end with exactly "
                        "one END")
    ops = vfb.program.opcode
    ctrl = np.flatnonzero((ops == int(Opcode.SYNC)) | (ops == int(Opcode.END)))
    if ctrl.size:
        raise _fail(source, f"instruction #{int(ctrl[0])} is a SYNC/END, but with a dispatch "
                    "table the dispatcher issues barriers and ends; TEXT holds IFP bodies only")


def _fail(source: str, msg: str) -> BinaryFormatError:
    return BinaryFormatError(f"{source}: {msg}")


def validate(vfb: VfbFile, source: str) -> None:
    """Check the consistency of ``vfb`` (everything the reader checks beyond the byte
    layout); raise :class:`BinaryFormatError` whose message starts with ``source``.

    Checks: ISA version; hardware name and fingerprint sizes; ``num_cores`` in 0..64 and
    above every dispatch entry's core, or, without a dispatch table, above every
    instruction's and IFP's core; every instruction's layer below the number
    of layers (unless the program has no layer table at all); TEXT decodes; IFP tile
    bounds ordered and instruction ranges inside TEXT; each layer's IFP range inside the
    IFP table with matching ``layer``; enum values; tensors, and the DATA blob, inside
    ``[0, ddr_size)``; each tensor's size equal to its shape times its element size (rank 0: a raw
    blob of any size);
    host-op references.
    """
    if vfb.isa_version != ISA_VERSION:
        raise _fail(source, f"instruction-set version {vfb.isa_version}, this vfpga runs "
                    f"version {ISA_VERSION}; recompile the model")
    if len(vfb.hw_name.encode()) > HW_NAME_BYTES:
        raise _fail(source, f"hardware name '{vfb.hw_name}' is longer than {HW_NAME_BYTES} "
                    "bytes (UTF-8); give the configuration a shorter name")
    if len(vfb.hw_fingerprint) != 32:
        raise _fail(source, "hardware fingerprint must be 32 bytes")
    if not 0 <= vfb.num_cores <= MAX_CORES:
        raise _fail(source, f"num_cores {vfb.num_cores} is not in 0..{MAX_CORES}")
    if vfb.ddr_size < 0 or vfb.data_offset < 0:
        raise _fail(source, "ddr_size and data_offset must not be negative")
    if vfb.data_offset + len(vfb.data) > vfb.ddr_size:
        raise _fail(source, f"the DATA blob ({len(vfb.data)} bytes at DDR offset "
                    f"{vfb.data_offset}) does not fit in ddr_size {vfb.ddr_size}")
    if len(vfb.text) % INSN_BYTES:
        raise _fail(source, f"TEXT has {len(vfb.text)} bytes, not a multiple of {INSN_BYTES}")
    try:
        prog = vfb.program
    except DecodeError as exc:
        raise _fail(source, f"TEXT: {exc}") from None
    n_insns = len(prog)
    n_layers = len(vfb.layers)
    # With a dispatch table the dispatcher ignores instruction and IFP core fields (the
    # table names each IFP's logical core), so they need not be below num_cores.
    routed = isinstance(vfb.dispatch, np.ndarray) and vfb.dispatch.size > 0
    if n_insns:
        bad = (np.zeros(0, np.int64) if routed
               else np.flatnonzero(prog.core >= vfb.num_cores))
        if bad.size:
            i = int(bad[0])
            raise _fail(source, f"instruction #{i} uses logical core {int(prog.core[i])} but "
                        f"the program declares {vfb.num_cores} cores")
        bad = np.flatnonzero(prog.layer >= n_layers) if n_layers else np.zeros(0, np.int64)
        if bad.size:
            i = int(bad[0])
            raise _fail(source, f"instruction #{i} belongs to layer {int(prog.layer[i])} but "
                        f"the program has {n_layers} layers")
    ifps = vfb.ifps
    if not isinstance(ifps, np.ndarray) or ifps.dtype != IFP_DTYPE or ifps.ndim != 1:
        raise _fail(source, "the IFP table must be a 1-D array of dtype IFP_DTYPE")
    n_ifps = int(ifps.shape[0])
    if n_ifps:
        checks: list[tuple[np.ndarray, str]] = [
            (ifps["layer"] >= n_layers, "layer index is not below the number of layers "
             f"({n_layers})"),
            ((ifps["core"] >= vfb.num_cores) & (not routed),
             f"core is not below num_cores ({vfb.num_cores})"),
            (ifps["w0"] > ifps["w1"], "w0 > w1"),
            (ifps["c0"] > ifps["c1"], "c0 > c1"),
            (ifps["h0"] > ifps["h1"], "h0 > h1"),
            (ifps["insn_offset"].astype(np.int64) + ifps["insn_count"] > n_insns,
             f"instruction range extends past the end of TEXT ({n_insns} instructions)"),
            ((ifps["reserved"] != 0) | (ifps["reserved2"] != 0), "reserved fields are not 0"),
        ]
        for mask, what in checks:
            bad = np.flatnonzero(mask)
            if bad.size:
                i = int(bad[0])
                r = ifps[i]
                raise _fail(source, f"IFP #{i} (layer {int(r['layer'])}, instructions "
                            f"{int(r['insn_offset'])}+{int(r['insn_count'])}): {what}")
    _validate_dispatch(vfb, source, n_ifps, n_layers)
    for li, layer in enumerate(vfb.layers):
        if layer.kind not in LAYER_KINDS:
            raise _fail(source, f"layer #{li} '{layer.name}': unknown kind '{layer.kind}' "
                        f"(known: {', '.join(LAYER_KINDS)})")
        if layer.macs < 0 or layer.first_ifp < 0 or layer.ifp_count < 0:
            raise _fail(source, f"layer #{li} '{layer.name}': negative value")
        end = layer.first_ifp + layer.ifp_count
        if end > n_ifps:
            raise _fail(source, f"layer #{li} '{layer.name}': IFPs {layer.first_ifp}..{end - 1} "
                        f"are past the end of the IFP table ({n_ifps} IFPs)")
        if layer.ifp_count:
            own = ifps["layer"][layer.first_ifp : end]
            bad = np.flatnonzero(own != li)
            if bad.size:
                j = layer.first_ifp + int(bad[0])
                raise _fail(source, f"layer #{li} '{layer.name}': its IFP #{j} belongs to "
                            f"layer {int(ifps['layer'][j])}")
    for ti, t in enumerate(vfb.tensors):
        what = f"tensor #{ti} '{t.name}'"
        for val, allowed, key in ((t.role, TENSOR_ROLES, "role"),
                                  (t.dtype, TENSOR_DTYPES, "dtype"),
                                  (t.layout, TENSOR_LAYOUTS, "layout")):
            if val not in allowed:
                raise _fail(source, f"{what}: unknown {key} '{val}' (known: "
                            f"{', '.join(allowed)})")
        if len(t.shape) > MAX_RANK or any(d < 0 for d in t.shape):
            raise _fail(source, f"{what}: shape {t.shape} has more than {MAX_RANK} "
                        "dimensions or a negative one")
        if np.isfinite(t.scale) and abs(t.scale) > float(np.finfo(np.float32).max):
            raise _fail(source, f"{what}: scale {t.scale} does not fit a float32")
        n_bytes = math.prod(t.shape) * TENSOR_ITEMSIZE.get(t.dtype, 1)
        if t.shape and t.size != n_bytes:  # rank 0: a raw blob of ``size`` bytes
            raise _fail(source, f"{what}: shape {'x'.join(map(str, t.shape))} of "
                        f"{t.dtype} holds {n_bytes} bytes, but its size is {t.size}")
        if t.onnx_shape is not None:
            s = t.onnx_shape
            if t.role not in ("input", "output") or t.dynamic or not t.shape:
                raise _fail(source, f"{what}: has an ONNX shape but is not a graph input or "
                            "output of static shape")
            if not 1 <= len(s) <= MAX_IO_RANK or any(d < 1 for d in s) or (
                    math.prod(s) != math.prod(t.shape)):
                raise _fail(source, f"{what}: ONNX shape {list(s)} must have 1..{MAX_IO_RANK} "
                            f"positive dimensions holding its {math.prod(t.shape)} elements")
        if t.ddr_offset < 0 or t.size < 0 or t.ddr_offset + t.size > vfb.ddr_size:
            raise _fail(source, f"{what}: DDR bytes [{t.ddr_offset}, {t.ddr_offset + t.size}) "
                        f"are not inside [0, ddr_size={vfb.ddr_size})")
    n_tensors = len(vfb.tensors)
    for hi, h in enumerate(vfb.host_ops):
        what = f"host op #{hi} '{h.name}' ({h.op_type})"
        if h.after_layer != BEFORE_FIRST_LAYER and not 0 <= h.after_layer < n_layers:
            raise _fail(source, f"{what}: after_layer {h.after_layer} is not a layer index "
                        f"(0..{n_layers - 1}) or {BEFORE_FIRST_LAYER:#x}")
        for key, refs in (("inputs", h.inputs), ("outputs", h.outputs)):
            if len(refs) > MAX_HOST_IO:
                raise _fail(source, f"{what}: more than {MAX_HOST_IO} {key}")
            for r in refs:
                if not 0 <= r < n_tensors:
                    raise _fail(source, f"{what}: {key[:-1]} tensor index {r} is not in "
                                f"0..{n_tensors - 1}")
        if not isinstance(h.attrs, dict):
            raise _fail(source, f"{what}: attrs must be a JSON object")


# ----------------------------------------------------------------------- writer
class _StrTab:
    def __init__(self) -> None:
        self.buf = bytearray(b"\0")
        self.index: dict[str, int] = {"": 0}

    def add(self, s: str) -> int:
        off = self.index.get(s)
        if off is None:
            raw = s.encode()
            if b"\0" in raw:
                raise BinaryFormatError(f"string {s!r} contains a NUL character")
            off = len(self.buf)
            self.buf += raw + b"\0"
            self.index[s] = off
        return off


def canonical_json(attrs: dict[str, Any]) -> str:
    """The canonical JSON text of host-op attributes (sorted keys, no spaces)."""
    return json.dumps(attrs, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _align(n: int) -> int:
    return -(-n // SECTION_ALIGN) * SECTION_ALIGN


def to_bytes(vfb: VfbFile) -> bytes:
    """Serialize ``vfb`` (after :func:`validate`; errors name ``<vfb being written>``).

    The output is deterministic: the same VfbFile always gives the same bytes.
    """
    validate(vfb, "<vfb being written>")
    strtab = _StrTab()

    prog = np.zeros(1, PROGRAM_DTYPE)
    prog["ddr_size"] = vfb.ddr_size
    prog["data_offset"] = vfb.data_offset
    prog["num_layers"] = len(vfb.layers)
    prog["num_cores"] = vfb.num_cores
    prog["isa_version"] = vfb.isa_version
    shapes = {t.name: list(t.onnx_shape) for t in vfb.tensors if t.onnx_shape is not None}
    prog["io_shapes"] = strtab.add(canonical_json(shapes)) if shapes else 0

    layers = np.zeros(len(vfb.layers), LAYER_DTYPE)
    for i, ly in enumerate(vfb.layers):
        layers[i] = (strtab.add(ly.name), LAYER_KINDS.index(ly.kind), 0, ly.first_ifp,
                     ly.ifp_count, ly.macs)

    tensors = np.zeros(len(vfb.tensors), TENSOR_DTYPE)
    for i, t in enumerate(vfb.tensors):
        shape = [*t.shape, *([0] * (MAX_RANK - len(t.shape)))]
        tensors[i] = (strtab.add(t.name), TENSOR_ROLES.index(t.role),
                      TENSOR_DTYPES.index(t.dtype), TENSOR_LAYOUTS.index(t.layout),
                      len(t.shape), shape, t.ddr_offset, t.size, t.scale, t.zero_point)

    hostops = np.zeros(len(vfb.host_ops), HOSTOP_DTYPE)
    for i, h in enumerate(vfb.host_ops):
        ins = [*h.inputs, *([0] * (MAX_HOST_IO - len(h.inputs)))]
        outs = [*h.outputs, *([0] * (MAX_HOST_IO - len(h.outputs)))]
        hostops[i] = (strtab.add(h.name), strtab.add(h.op_type),
                      strtab.add(canonical_json(h.attrs)), h.after_layer, len(h.inputs),
                      len(h.outputs), 0, ins, outs, 0)

    payload: dict[SectionKind, bytes] = {
        SectionKind.PROGRAM: prog.tobytes(),
        SectionKind.LAYERS: layers.tobytes(),
        SectionKind.IFPS: np.ascontiguousarray(vfb.ifps).tobytes(),
        SectionKind.TENSORS: tensors.tobytes(),
        SectionKind.HOSTOPS: hostops.tobytes(),
        SectionKind.STRTAB: bytes(strtab.buf),
        SectionKind.TEXT: bytes(vfb.text),
        SectionKind.DATA: bytes(vfb.data),
        SectionKind.DISPATCH: np.ascontiguousarray(vfb.dispatch).tobytes(),
    }
    directory = np.zeros(len(SECTION_ORDER), DIR_DTYPE)
    pos = _align(HEADER_BYTES + DIR_ENTRY_BYTES * len(SECTION_ORDER))
    for i, kind in enumerate(SECTION_ORDER):
        directory[i] = (int(kind), 0, pos, len(payload[kind]))
        pos = _align(pos + len(payload[kind]))
    last = SECTION_ORDER[-1]
    body_end = int(directory["offset"][-1]) + len(payload[last])
    file_size = body_end + TRAILER_BYTES

    header = np.zeros(1, HEADER_DTYPE)
    header["magic"] = MAGIC
    header["version"] = FORMAT_VERSION
    header["fingerprint"] = np.frombuffer(vfb.hw_fingerprint, np.uint8)
    header["hw_name"] = vfb.hw_name.encode()
    header["file_size"] = file_size
    header["section_count"] = len(SECTION_ORDER)
    header["dir_offset"] = HEADER_BYTES

    out = bytearray(body_end)
    out[:HEADER_BYTES] = header.tobytes()
    out[HEADER_BYTES : HEADER_BYTES + directory.nbytes] = directory.tobytes()
    for i, kind in enumerate(SECTION_ORDER):
        off = int(directory["offset"][i])
        out[off : off + len(payload[kind])] = payload[kind]
    out += hashlib.sha256(out).digest()
    return bytes(out)


def write_vfb(path: str | os.PathLike[str], vfb: VfbFile) -> None:
    """Write ``vfb`` to ``path`` atomically (temporary file in the same folder, then
    ``os.replace``): either the complete file appears or the old one stays."""
    from vfpga.fileio import atomic_write

    atomic_write(path, to_bytes(vfb))


# ----------------------------------------------------------------------- reader
#: Largest binary the readers accept (VGG-16's is ~140 MB).
MAX_BINARY_BYTES = 1 << 30

@dataclass(frozen=True)
class SectionEntry:
    """One section-directory entry: section ``kind`` occupies bytes
    ``[offset, offset + size)``; ``index`` is the entry's position in the directory."""

    index: int
    kind: SectionKind
    offset: int
    size: int


@dataclass(frozen=True)
class VfbHeader:
    """The fixed header and the section directory of a ``.vfb`` file."""

    version: int
    flags: int
    hw_fingerprint: bytes
    hw_name: str
    file_size: int
    sections: dict[SectionKind, SectionEntry]

    def ordered_sections(self) -> list[SectionEntry]:
        """The directory entries in directory order."""
        return sorted(self.sections.values(), key=lambda s: s.index)


@dataclass(frozen=True)
class _Fixed:
    version: int
    flags: int
    fingerprint: bytes
    hw_name: str
    file_size: int
    section_count: int


def _parse_fixed(head: bytes, source: str, actual_size: int) -> _Fixed:
    """Check the fixed header (``head`` = the first bytes of a file of ``actual_size``)."""
    if actual_size < HEADER_BYTES:
        raise _fail(source, f"truncated: the file has {actual_size} bytes, fewer than the "
                    f"{HEADER_BYTES}-byte header")
    magic = bytes(head[:8])
    if magic != MAGIC:
        raise _fail(source, f"not a vfpga binary: bad magic {magic!r} at byte 0 (expected "
                    f"{MAGIC!r})")
    h = np.frombuffer(head, HEADER_DTYPE, count=1)[0]
    version = int(h["version"])
    if version != FORMAT_VERSION:
        raise _fail(source, f"format version {version} at byte 8; this vfpga reads version "
                    f"{FORMAT_VERSION} (recompile the model with this vfpga)")
    flags = int(h["flags"])
    if flags:
        raise _fail(source, f"unknown header flags {flags:#x} at byte 12 (none are defined)")
    if np.any(h["reserved"]):
        raise _fail(source, "reserved header bytes 80..95 are not zero")
    file_size = int(h["file_size"])
    if actual_size < file_size:
        raise _fail(source, f"truncated: the header (byte 64) records {file_size} bytes but the "
                    f"file has only {actual_size}")
    if actual_size > file_size:
        raise _fail(source, f"{actual_size - file_size} unexpected bytes after the end of the "
                    f"binary at byte {file_size} (the size its header records at byte 64)")
    if int(h["dir_offset"]) != HEADER_BYTES:
        raise _fail(source, f"section directory offset {int(h['dir_offset'])} at byte 76 is not "
                    f"{HEADER_BYTES}")
    try:
        hw_name = bytes(h["hw_name"]).decode()
    except UnicodeDecodeError:
        raise _fail(source, "hardware name at byte 48 is not UTF-8") from None
    return _Fixed(version, flags, h["fingerprint"].tobytes(), hw_name, file_size,
                  int(h["section_count"]))


def _check_hw(fixed: _Fixed, source: str, hw: HardwareConfig | None) -> None:
    if hw is None:
        return
    if fixed.fingerprint == hw.fingerprint:
        if fixed.hw_name != hw.name:
            raise _fail(source, f"hardware name '{fixed.hw_name}' at byte 48 disagrees with "
                        f"the fingerprint, which is that of '{hw.name}' (a corrupt header; "
                        "recompile the model)")
        return
    if fixed.hw_name == hw.name:
        also = (f"a different configuration also named '{hw.name}' (fingerprint "
                f"{fixed.fingerprint.hex()[:16]} in the binary, {hw.fingerprint.hex()[:16]} "
                "on the target)")
    else:
        also = (f"hardware '{fixed.hw_name}' (fingerprint {fixed.fingerprint.hex()[:16]}), "
                f"but the target is '{hw.name}' (fingerprint {hw.fingerprint.hex()[:16]})")
    raise _fail(source, f"hardware mismatch: the binary was built for {also}; recompile the "
                f"model for the target with --hw {hw.name}")


def _dir_end(fixed: _Fixed) -> int:
    return HEADER_BYTES + fixed.section_count * DIR_ENTRY_BYTES


def _parse_directory(raw: bytes, fixed: _Fixed, source: str) -> dict[SectionKind, SectionEntry]:
    """Check the section directory (``raw`` = its bytes) against the file layout."""
    body_end = fixed.file_size - TRAILER_BYTES
    dir_end = _dir_end(fixed)
    if dir_end > body_end:
        raise _fail(source, f"section directory out of bounds: {fixed.section_count} entries "
                    f"(bytes {HEADER_BYTES}..{dir_end}) extend past the end of the sections at "
                    f"byte {body_end}")
    entries = np.frombuffer(raw, DIR_DTYPE, count=fixed.section_count)
    sections: dict[SectionKind, SectionEntry] = {}
    for i, e in enumerate(entries.tolist()):
        kind_code, reserved, off, size = (int(v) for v in e)
        at = HEADER_BYTES + i * DIR_ENTRY_BYTES
        try:
            kind = SectionKind(kind_code)
        except ValueError:
            raise _fail(source, f"unknown section kind {kind_code} in directory entry {i} at "
                        f"byte {at} (known: "
                        f"{', '.join(f'{k.value} {k.name}' for k in SectionKind)})") from None
        if kind in sections:
            raise _fail(source, f"duplicate {kind.name} section in directory entry {i} at byte "
                        f"{at} (first in entry {sections[kind].index})")
        if reserved:
            raise _fail(source, f"directory entry {i} at byte {at}: reserved field is not 0")
        if off % SECTION_ALIGN:
            raise _fail(source, f"section {kind.name} at byte {off} is not {SECTION_ALIGN}-byte "
                        f"aligned (directory entry {i} at byte {at})")
        if off < dir_end:
            raise _fail(source, f"section {kind.name} at byte {off} overlaps the header or the "
                        f"section directory (which end at byte {dir_end})")
        if off + size > body_end:
            raise _fail(source, f"section {kind.name} (bytes {off}..{off + size}) extends past "
                        f"the end of the sections at byte {body_end} (truncated or corrupt "
                        "directory)")
        sections[kind] = SectionEntry(i, kind, off, size)
    missing = [k.name for k in SectionKind if k not in sections]
    if missing:
        raise _fail(source, f"missing section(s) {', '.join(missing)}")
    spans = sorted((s.offset, s.offset + s.size, s.kind.name) for s in sections.values())
    for (_, e0, n0), (s1, _, n1) in itertools.pairwise(spans):
        if s1 < e0:
            raise _fail(source, f"sections {n0} and {n1} overlap at byte {s1}")
    for kind, dt in SECTION_DTYPES.items():
        s = sections[kind]
        if s.size % dt.itemsize:
            raise _fail(source, f"section {kind.name} at byte {s.offset} has {s.size} bytes, not "
                        f"a multiple of its {dt.itemsize}-byte record")
    if sections[SectionKind.PROGRAM].size != PROGRAM_DTYPE.itemsize:
        s = sections[SectionKind.PROGRAM]
        raise _fail(source, f"section PROGRAM at byte {s.offset} has {s.size} bytes, expected "
                    f"one {PROGRAM_DTYPE.itemsize}-byte record")
    if sections[SectionKind.TEXT].size % INSN_BYTES:
        s = sections[SectionKind.TEXT]
        raise _fail(source, f"section TEXT at byte {s.offset} has {s.size} bytes, not a "
                    f"multiple of {INSN_BYTES}")
    return sections


def read_header(data: bytes | bytearray | memoryview, source: str) -> VfbHeader:
    """Check and parse the header, the checksum and the section directory of a whole
    file's bytes (the checks of :func:`from_bytes` before the sections are read)."""
    fixed = _parse_fixed(bytes(data[:HEADER_BYTES]), source, len(data))
    _verify_checksum(data, fixed, source)
    return _header(data, fixed, source)


def _header(data: bytes | bytearray | memoryview, fixed: _Fixed, source: str) -> VfbHeader:
    raw = bytes(data[HEADER_BYTES : min(_dir_end(fixed), len(data))])
    sections = _parse_directory(raw, fixed, source)
    return VfbHeader(fixed.version, fixed.flags, fixed.fingerprint, fixed.hw_name,
                     fixed.file_size, sections)


def _verify_checksum(data: bytes | bytearray | memoryview, fixed: _Fixed, source: str) -> None:
    n = fixed.file_size
    if n < HEADER_BYTES + TRAILER_BYTES:
        raise _fail(source, f"truncated: {n} bytes leave no room for the {TRAILER_BYTES}-byte "
                    "checksum trailer")
    mv = memoryview(data)
    actual = hashlib.sha256(mv[: n - TRAILER_BYTES]).digest()
    stored = bytes(mv[n - TRAILER_BYTES : n])
    if actual != stored:
        raise _fail(source, f"checksum mismatch: the file is corrupt (SHA-256 of bytes "
                    f"0..{n - TRAILER_BYTES} is {actual.hex()[:16]}..., the trailer at byte "
                    f"{n - TRAILER_BYTES} records {stored.hex()[:16]}...)")


def _string(strtab: bytes, off: int, source: str, where: str) -> str:
    if off >= len(strtab):
        raise _fail(source, f"{where}: string offset {off} is outside the string table "
                    f"({len(strtab)} bytes)")
    end = strtab.find(b"\0", off)
    if end < 0:
        raise _fail(source, f"{where}: string at offset {off} is not NUL-terminated")
    try:
        return strtab[off:end].decode()
    except UnicodeDecodeError:
        raise _fail(source, f"{where}: string at offset {off} is not UTF-8") from None


def _enum(names: tuple[str, ...], code: int, source: str, where: str, what: str) -> str:
    if code >= len(names):
        raise _fail(source, f"{where}: unknown {what} code {code} (known: "
                    f"{', '.join(f'{i} {n}' for i, n in enumerate(names))})")
    return names[code]


def _check_padding(mv: memoryview, hdr: VfbHeader, source: str) -> None:
    """The bytes outside the header, the directory and the sections are zero, and the
    trailer follows the last section directly."""
    body_end = hdr.file_size - TRAILER_BYTES
    spans = sorted((s.offset, s.offset + s.size) for s in hdr.sections.values())
    last_end = max((e for _, e in spans), default=HEADER_BYTES)
    if last_end != body_end:
        raise _fail(source, f"{body_end - last_end} bytes between the end of the last section "
                    f"(byte {last_end}) and the trailer (byte {body_end}); the trailer must "
                    "follow the last section directly")
    pos = HEADER_BYTES + DIR_ENTRY_BYTES * len(hdr.sections)
    for start, end in spans:
        if start > pos:
            gap = np.frombuffer(mv[pos:start], np.uint8)
            nz = np.flatnonzero(gap)
            if nz.size:
                raise _fail(source, f"padding byte {pos + int(nz[0])} (between bytes {pos} and "
                            f"{start}) is not zero")
        pos = max(pos, end)


def from_bytes(
    data: bytes | bytearray | memoryview, source: str, hw: HardwareConfig | None = None
) -> VfbFile:
    """Parse and check a whole ``.vfb`` file. ``source`` (the file name) starts every
    error message. With ``hw``, the binary's hardware fingerprint must equal
    ``hw.fingerprint``.

    Raises :class:`BinaryFormatError` for: a truncated file, a bad magic, another format
    version, unknown header flags, a bad checksum, a hardware mismatch, a bad section
    directory (out of bounds, unknown / duplicate / missing / misaligned / overlapping
    sections, a section past the end), malformed records, a TEXT that does not decode, and
    inconsistent tables (see :func:`validate`).
    """
    fixed = _parse_fixed(bytes(data[:HEADER_BYTES]), source, len(data))
    _verify_checksum(data, fixed, source)
    _check_hw(fixed, source, hw)
    hdr = _header(data, fixed, source)
    mv = memoryview(data)
    _check_padding(mv, hdr, source)

    def sect(kind: SectionKind) -> tuple[memoryview, int]:
        s = hdr.sections[kind]
        return mv[s.offset : s.offset + s.size], s.offset

    strtab = bytes(sect(SectionKind.STRTAB)[0])
    if strtab[:1] != b"\0":
        raise _fail(source, f"string table at byte {hdr.sections[SectionKind.STRTAB].offset} "
                    "does not start with the empty string")
    recs: dict[SectionKind, np.ndarray] = {}
    for kind, dt in SECTION_DTYPES.items():
        raw, off = sect(kind)
        arr = np.frombuffer(raw, dt)
        for name in dt.names or ():
            if name.startswith("reserved"):
                flat = arr[name].reshape(len(arr), -1) if len(arr) else np.zeros((0, 1))
                bad = np.flatnonzero(flat.any(axis=1))
                if bad.size:
                    i = int(bad[0])
                    raise _fail(source, f"{kind.name} record {i} at byte "
                                f"{off + i * dt.itemsize}: reserved field '{name}' is not 0")
        recs[kind] = arr

    prog = recs[SectionKind.PROGRAM][0]
    num_layers = int(prog["num_layers"])
    larr = recs[SectionKind.LAYERS]
    if num_layers != len(larr):
        raise _fail(source, f"PROGRAM records {num_layers} layers but the LAYERS section holds "
                    f"{len(larr)}")

    def rec_at(kind: SectionKind, i: int) -> str:
        return (f"{kind.name} record {i} at byte "
                f"{hdr.sections[kind].offset + i * SECTION_DTYPES[kind].itemsize}")

    layers = []
    for i, r in enumerate(larr.tolist()):
        name_off, kind, _, first, count, macs = r
        where = rec_at(SectionKind.LAYERS, i)
        layers.append(Layer(_string(strtab, name_off, source, where),
                            _enum(LAYER_KINDS, kind, source, where, "layer kind"),
                            macs, first, count))
    tensors = []
    for i, r in enumerate(recs[SectionKind.TENSORS].tolist()):
        name_off, role, dtype, layout, rank, shape, ddr_off, size, scale, zp = r
        where = rec_at(SectionKind.TENSORS, i)
        shape = [int(d) for d in shape]
        if rank > MAX_RANK:
            raise _fail(source, f"{where}: rank {rank} > {MAX_RANK}")
        if any(shape[rank:]):
            raise _fail(source, f"{where}: shape entries past rank {rank} are not 0")
        tensors.append(Tensor(
            _string(strtab, name_off, source, where),
            _enum(TENSOR_ROLES, role, source, where, "tensor role"),
            _enum(TENSOR_DTYPES, dtype, source, where, "tensor dtype"),
            _enum(TENSOR_LAYOUTS, layout, source, where, "tensor layout"),
            tuple(shape[:rank]), ddr_off, size, scale, zp))
    _attach_io_shapes(tensors, strtab, int(prog["io_shapes"]), source)
    host_ops = []
    for i, r in enumerate(recs[SectionKind.HOSTOPS].tolist()):
        name_off, type_off, attrs_off, after, n_in, n_out, _, ins, outs, _ = r
        where = rec_at(SectionKind.HOSTOPS, i)
        ins = [int(t) for t in ins]
        outs = [int(t) for t in outs]
        if n_in > MAX_HOST_IO or n_out > MAX_HOST_IO:
            raise _fail(source, f"{where}: more than {MAX_HOST_IO} inputs or outputs")
        if any(ins[n_in:]) or any(outs[n_out:]):
            raise _fail(source, f"{where}: unused input/output entries are not 0")
        attrs_text = _string(strtab, attrs_off, source, where)
        try:
            attrs = json.loads(attrs_text) if attrs_text else {}
        except json.JSONDecodeError as exc:
            raise _fail(source, f"{where}: attributes are not JSON: {exc}") from None
        if not isinstance(attrs, dict):
            raise _fail(source, f"{where}: attributes are not a JSON object")
        host_ops.append(HostOp(_string(strtab, name_off, source, where),
                               _string(strtab, type_off, source, where), after,
                               tuple(ins[:n_in]), tuple(outs[:n_out]), attrs))

    text_raw, text_off = sect(SectionKind.TEXT)
    text = bytes(text_raw)
    try:
        program = decode(text)
    except DecodeError as exc:
        raise _fail(source, f"TEXT section at byte {text_off}: {exc}") from None
    vfb = VfbFile(
        hw_name=fixed.hw_name,
        hw_fingerprint=fixed.fingerprint,
        ddr_size=int(prog["ddr_size"]),
        data_offset=int(prog["data_offset"]),
        num_cores=int(prog["num_cores"]),
        text=text,
        ifps=recs[SectionKind.IFPS].copy(),
        layers=layers,
        tensors=tensors,
        host_ops=host_ops,
        data=bytes(sect(SectionKind.DATA)[0]),
        isa_version=int(prog["isa_version"]),
        dispatch=recs[SectionKind.DISPATCH].copy(),
        _program=(text, program),
    )
    validate(vfb, source)
    if hw is not None:
        check_hw_limits(vfb, hw, source)
    return vfb


#: Most dimensions a graph input's or output's ONNX shape (PROGRAM ``io_shapes``) may have.
MAX_IO_RANK = 8


def _attach_io_shapes(tensors: list[Tensor], strtab: bytes, off: int, source: str) -> None:
    """Set ``onnx_shape`` of the tensors the PROGRAM record's ``io_shapes`` JSON names
    (string-table offset ``off``; 0: none); :func:`validate` checks the shapes."""
    if not off:
        return
    where = "PROGRAM io_shapes"
    text = _string(strtab, off, source, where)
    try:
        shapes = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(source, f"{where}: not JSON: {exc}") from None
    if not isinstance(shapes, dict) or not shapes:
        raise _fail(source, f"{where}: not a non-empty JSON object of tensor name -> shape")
    by_name = {t.name: k for k, t in enumerate(tensors)}
    for name, shape in shapes.items():
        if name not in by_name:
            raise _fail(source, f"{where}: no tensor '{name}'")
        if not isinstance(shape, list) or not all(type(d) is int for d in shape):
            raise _fail(source, f"{where}: the shape of '{name}' is not a list of integers")
        k = by_name[name]
        tensors[k] = replace(tensors[k], onnx_shape=tuple(shape))


def check_hw_limits(vfb: VfbFile, hw: HardwareConfig, source: str) -> None:
    """Check ``vfb`` against the hardware it runs on: its core count, its DDR size, and
    every IFP's recorded buffer usage within ``hw``'s cores, DDR and buffers. Raise
    :class:`BinaryFormatError` naming the field."""
    if vfb.num_cores > hw.num_cores:
        raise _fail(source, f"the binary uses {vfb.num_cores} cores, the hardware "
                    f"'{hw.name}' has {hw.num_cores}")
    if vfb.ddr_size > hw.ddr_bytes:
        raise _fail(source, f"ddr_size {vfb.ddr_size:,} is more than the hardware's "
                    f"{hw.ddr_bytes:,} bytes of DDR")
    ifps = vfb.ifps
    for name in BUFFER_NAMES:
        if not len(ifps):
            break
        limit = hw.buffer_size(name)
        bad = np.flatnonzero(ifps[name].astype(np.int64) > limit)
        if bad.size:
            i = int(bad[0])
            raise _fail(source, f"IFP #{i} (layer {int(ifps['layer'][i])}): uses "
                        f"{int(ifps[name][i]):,} bytes of {name}, the hardware has {limit:,}")


def read_capped(path: str | os.PathLike[str], max_bytes: int = MAX_BINARY_BYTES) -> bytes:
    """The bytes of the binary ``path``, read with a size cap: the fixed header first
    (a file that is not a vfpga binary, ``/dev/zero`` for one, fails there), then exactly
    the size its header records, which must not exceed ``max_bytes``, then end of file.
    Raises :class:`BinaryFormatError` naming the path."""
    source = str(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEADER_BYTES)
            if len(head) < HEADER_BYTES or head[:8] != MAGIC:
                _parse_fixed(head, source, len(head))  # raises: truncated or bad magic
            declared = int(np.frombuffer(head, HEADER_DTYPE, count=1)[0]["file_size"])
            if declared > max_bytes:
                raise _fail(source, f"the header (byte 64) records {declared:,} bytes, more "
                            f"than the {max_bytes:,} bytes a binary may have")
            rest = fh.read(max(declared - HEADER_BYTES, 0) + 1)
    except OSError as exc:
        raise BinaryFormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    return head + rest


def read_vfb(path: str | os.PathLike[str], hw: HardwareConfig | None = None,
             max_bytes: int = MAX_BINARY_BYTES) -> VfbFile:
    """Read and check the ``.vfb`` file ``path`` (see :func:`read_capped` and
    :func:`from_bytes`)."""
    return from_bytes(read_capped(path, max_bytes), str(path), hw)


@dataclass(frozen=True)
class IfpTable:
    """What :func:`read_ifp_table` returns: the hardware the binary was built for, its IFP
    table (dtype :data:`IFP_DTYPE`), and ``bytes_read``, the number of bytes read from
    the file (header + directory + IFPS section)."""

    source: str
    hw_name: str
    hw_fingerprint: bytes
    file_size: int
    ifps: np.ndarray
    bytes_read: int


def read_ifp_table(path: str | os.PathLike[str], hw: HardwareConfig | None = None) -> IfpTable:
    """Read only the header, the section directory and the IFP table of ``path`` (seek and
    read; the instructions and weights are not touched, and the checksum, which covers
    the whole file, is not verified). Checks magic, version, recorded size, directory and,
    with ``hw``, the hardware fingerprint, with the messages of :func:`from_bytes`."""
    source = str(path)
    try:
        with open(path, "rb") as f:
            actual = os.fstat(f.fileno()).st_size
            head = f.read(HEADER_BYTES)
            fixed = _parse_fixed(head, source, actual)
            _check_hw(fixed, source, hw)
            dir_raw = b""
            if _dir_end(fixed) <= fixed.file_size - TRAILER_BYTES:
                dir_raw = f.read(fixed.section_count * DIR_ENTRY_BYTES)
            sections = _parse_directory(dir_raw, fixed, source)
            s = sections[SectionKind.IFPS]
            f.seek(s.offset)
            raw = f.read(s.size)
    except OSError as exc:
        raise BinaryFormatError(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) != s.size:
        raise _fail(source, f"truncated while reading section IFPS at byte {s.offset}")
    return IfpTable(source, fixed.hw_name, fixed.fingerprint, fixed.file_size,
                    np.frombuffer(raw, IFP_DTYPE).copy(),
                    len(head) + len(dir_raw) + len(raw))

