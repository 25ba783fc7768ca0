"""The ``ifp`` dialect: tiling candidates and instruction frame packages (IFPs).

After ``dnn-tile`` a module holds, next to its ``dnn.graph``, one ``ifp.layer`` per
accelerator layer (in execution order), each holding one ``ifp.candidate`` per tiling
candidate; ``ifp-package`` gives every candidate one ``ifp.package`` per tile, and
``ifp-lower-to-isa`` fills every package with its ``isa`` instructions::

    builtin.module attributes {vfpga.hw = "pool16", vfpga.buffers = {ibuf = 131072 : i64, ...}} {
      dnn.graph @net(...) { ... }
      ifp.layer 0 "conv0" conv out 16x20x20 macs 172800 selected 1 {
        ifp.candidate w parts 1 at [0, 20] makespan 9840 {
          ifp.package w=0:20 c=0:16 h=0:20 og=16 rb=20 chunk=0 ibuf=1452 wbuf=432
                      pbuf=192 obuf=6400 abuf=0 latency=9840 core=0 {
            isa.load to=pbuf ddr=... n2=192 n0=1 n1=1 deps [wait_next]
            ...
          }
        }
        ifp.candidate w parts 2 at [0, 10, 20] makespan 5120 { ... }
      }
    }

(a package prints on one line). A **tile** is an output range: columns ``[w0, w1)``,
output channels ``[c0, c1)`` and rows ``[h0, h1)``. A candidate splits the output along
``w`` or ``c`` at the points ``at`` (``parts + 1`` increasing values from 0 to the
layer's width / channels), or (axis ``tiles``) lists its ``parts`` tiles explicitly, six
numbers ``w0, w1, c0, c1, h0, h1`` each; its packages are its tiles in order, and
together they cover the output exactly once (verified).

The hardware's buffer sizes are the module attribute ``vfpga.buffers`` (set by
``dnn-tile``); a package's buffer usage must not exceed them (verified when both are
present).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, ClassVar, cast

import numpy as np
from xdsl.dialects.builtin import (
    UNKNOWN_LOC,
    BytesAttr,
    DenseArrayBase,
    DictionaryAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
)
from xdsl.ir import Attribute, Block, Dialect, Operation, Region
from xdsl.irdl import (
    IRDLOperation,
    irdl_op_definition,
    opt_prop_def,
    prop_def,
    region_def,
    traits_def,
)
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import HasParent, NoTerminator
from xdsl.utils.exceptions import VerifyException

from vfpga.dialects import derived
from vfpga.dialects.dnn import int_array, int_tuple
from vfpga.dialects.isa import (
    ConvOp,
    EltwiseOp,
    IsaOp,
    LoadOp,
    PoolOp,
    SaveOp,
    int_attr,
    op_to_fields,
    words_to_fields,
)
from vfpga.hw.config import BUFFER_NAMES
from vfpga.isa.codec import encode_batch
from vfpga.isa.spec import INSN_BYTES, Opcode

INSNS_KEY = "insns"
"""Key of a package's instruction fields in :mod:`vfpga.dialects.derived`."""

LAYER_KINDS = ("conv", "pool", "add", "resize")
AXES = ("w", "c")
TILES = "tiles"
"""The ``axis`` of a candidate that lists its tiles (any partition into rectangles)."""
BUFFERS_ATTR = "vfpga.buffers"
"""Module attribute: ``{ibuf = N : i64, ...}``, the on-chip buffer sizes of one core."""


def _int(op: Operation, name: str) -> int | None:
    a = op.properties.get(name)
    return None if a is None else cast(IntegerAttr, a).value.data


def _print_region_if_any(printer: Printer, region: Region) -> None:
    if region.blocks:
        printer.print_string(" ")
        printer.print_region(region, print_entry_block_args=False, print_empty_block=False)


def _parse_region_if_any(parser: Parser) -> Region:
    region = parser.parse_optional_region()
    if region is None:
        return Region()
    if not region.blocks:
        region.add_block(Block())
    return region


def _parse_attributes(parser: Parser) -> dict[str, Attribute]:
    """``attributes {...}`` (the keyword keeps a dictionary apart from the region)."""
    d = parser.parse_optional_attr_dict_with_keyword()
    return {} if d is None else dict(d.data)


def module_buffers(op: Operation) -> dict[str, int] | None:
    """The ``vfpga.buffers`` sizes of the module enclosing ``op`` (None if absent)."""
    m = op
    while (p := m.parent_op()) is not None:
        m = p
    if not isinstance(m, ModuleOp):
        return None
    d = m.attributes.get(BUFFERS_ATTR)
    if not isinstance(d, DictionaryAttr):
        return None
    cached = _SIZES.get(id(d))
    if cached is not None and cached[0] is d:
        return cached[1]
    sizes = {k: v.value.data for k, v in d.data.items() if isinstance(v, IntegerAttr)}
    if len(_SIZES) > 64:
        _SIZES.clear()
    _SIZES[id(d)] = (d, sizes)
    return sizes


_SIZES: dict[int, tuple[DictionaryAttr, dict[str, int]]] = {}


_TILES_VERIFIED: dict[int, tuple[DenseArrayBase, int, tuple[int, int, int]]] = {}
"""Tile lists (``ifp.candidate`` axis ``tiles``) that passed their checks: ``id(at)`` ->
``(at, parts, layer output)``. The checks are a function of those alone and attributes
are immutable, so a candidate holding that very ``at`` object with the same ``parts``
in a layer of the same output passes them again (the module is verified after
``dnn-tile`` and again before linking; the pairwise overlap test is the costly part).
The ``at`` object is held, so its id is not reused while cached."""


def buffers_attr(sizes: dict[str, int]) -> DictionaryAttr:
    """The ``vfpga.buffers`` attribute of buffer sizes (in :data:`BUFFER_NAMES` order)."""
    return DictionaryAttr({b: IntegerAttr(int(sizes[b]), 64) for b in BUFFER_NAMES})


# ------------------------------------------------------------------------------ layer
@irdl_op_definition
class LayerOp(IRDLOperation):
    """One accelerator layer: the ``index``-th ``dnn.conv`` / ``dnn.pool`` / ``dnn.add`` of
    the module's ``dnn.graph`` in block order (``node`` is its name), its ``kind``, output
    shape ``out`` = channels x rows x columns, and exact ``macs``. Its block holds one
    ``ifp.candidate`` per tiling candidate; ``selected`` (set by ``ifp-select``) is the
    position of the candidate chosen for the module's core count.

    Syntax: ``ifp.layer 3 "conv3" conv out 16x10x10 macs 6912 (selected N)? {candidates}``.
    Verified: ``kind`` is conv, pool or add; ``index`` >= 0; positive output dims; only
    ``ifp.candidate`` ops in the body; ``selected`` names one of them.
    """

    name = "ifp.layer"

    index = prop_def(IntegerAttr)
    node = prop_def(StringAttr)
    kind = prop_def(StringAttr)
    out = prop_def(DenseArrayBase)
    macs = prop_def(IntegerAttr)
    selected = opt_prop_def(IntegerAttr)
    body = region_def("single_block")

    traits = traits_def(NoTerminator())

    def __init__(
        self, index: int, node: str, kind: str, out: Sequence[int], macs: int,
        candidates: Sequence[CandidateOp] = (),
    ) -> None:
        super().__init__(
            properties={
                "index": int_attr(index),
                "node": StringAttr(node),
                "kind": StringAttr(kind),
                "out": int_array(out),
                "macs": int_attr(macs),
            },
            regions=[Region(Block(candidates))],
        )

    @property
    def index_value(self) -> int:
        return self.index.value.data

    @property
    def out_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the layer's output."""
        s = int_tuple(self.out)
        return (s[0], s[1], s[2]) if len(s) == 3 else (0, 0, 0)

    def candidates(self) -> list[CandidateOp]:
        """The candidates in order."""
        return cast(list[CandidateOp], list(self.body.block.ops))

    def selected_candidate(self) -> CandidateOp | None:
        """The chosen candidate (None before ``ifp-select``)."""
        if self.selected is None:
            return None
        return self.candidates()[self.selected.value.data]

    def verify_(self) -> None:
        who = f'ifp.layer {self.index_value} "{self.node.data}"'
        if self.kind.data not in LAYER_KINDS:
            raise VerifyException(f"{who}: kind must be one of {', '.join(LAYER_KINDS)}")
        if self.index_value < 0 or self.macs.value.data < 0:
            raise VerifyException(f"{who}: index and macs must be >= 0")
        s = int_tuple(self.out)
        if len(s) != 3 or min(s) < 1:
            raise VerifyException(f"{who}: 'out' must be 3 positive dims CxHxW, got {list(s)}")
        cands = list(self.body.block.ops)
        for op in cands:
            if not isinstance(op, CandidateOp):
                raise VerifyException(f"{who}: '{op.name}' is not an ifp.candidate")
        if self.selected is not None and not 0 <= self.selected.value.data < len(cands):
            raise VerifyException(
                f"{who}: selected {self.selected.value.data} is not a candidate index "
                f"(0..{len(cands) - 1})"
            )

    def print(self, printer: Printer) -> None:
        printer.print_string(f" {self.index_value} ")
        printer.print_string_literal(self.node.data)
        c, h, w = self.out_shape
        printer.print_string(f" {self.kind.data} out {c}x{h}x{w} macs {self.macs.value.data}")
        if self.selected is not None:
            printer.print_string(f" selected {self.selected.value.data}")
        printer.print_op_attributes(self.attributes, print_keyword=True)
        printer.print_string(" ")
        printer.print_region(self.body, print_entry_block_args=False,
                             print_empty_block=False)

    @classmethod
    def parse(cls, parser: Parser) -> LayerOp:
        index = parser.parse_integer(allow_boolean=False, allow_negative=False)
        node = parser.parse_str_literal(" (the dnn node name) in ifp.layer")
        kind = parser.parse_optional_keyword_in(LAYER_KINDS)
        if kind is None:
            parser.raise_error(f"ifp.layer: kind must be one of {', '.join(LAYER_KINDS)}")
        parser.parse_keyword("out", " in ifp.layer")
        dims = parser.parse_dimension_list()
        parser.parse_keyword("macs", " in ifp.layer")
        macs = parser.parse_integer(allow_boolean=False, allow_negative=False)
        props: dict[str, Attribute] = {
            "index": int_attr(index), "node": StringAttr(node), "kind": StringAttr(kind),
            "out": int_array(dims), "macs": int_attr(macs),
        }
        if parser.parse_optional_keyword("selected") is not None:
            props["selected"] = int_attr(
                parser.parse_integer(allow_boolean=False, allow_negative=False))
        attributes = _parse_attributes(parser)
        region = _parse_region_if_any(parser)
        return cls.create(properties=props, attributes=attributes, regions=[region])


# ------------------------------------------------------------------------------ candidate
@irdl_op_definition
class CandidateOp(IRDLOperation):
    """One tiling candidate of the enclosing layer: the output split along ``axis``
    (``w``: columns, ``c``: output channels) at the points ``at`` into ``parts`` tiles
    (tile ``i`` is ``[at[i], at[i+1])`` along the axis, the whole range along the other,
    the full height); or, with axis ``tiles``, ``parts`` tiles listed in ``at`` as
    ``w0, w1, c0, c1, h0, h1`` each (any partition of the output into rectangles).
    ``makespan`` is the LPT makespan of its packages' latencies on the module's
    ``vfpga.cores`` cores (set by ``ifp-select``).

    Syntax: ``ifp.candidate w parts 2 at [0, 5, 10] (makespan N)? {packages}?``.
    Verified: ``axis`` is ``w``, ``c`` or ``tiles``; for ``w`` / ``c`` ``at`` has
    ``parts + 1`` strictly increasing values from 0 to the layer's width (``w``) or
    channels (``c``); for ``tiles`` it has ``6 * parts`` values, non-empty tiles within
    the output that cover it exactly once; when it has packages, they are exactly its
    tiles in order (so they cover the output once).
    """

    name = "ifp.candidate"

    axis = prop_def(StringAttr)
    parts = prop_def(IntegerAttr)
    at = prop_def(DenseArrayBase)
    makespan = opt_prop_def(IntegerAttr)
    body = region_def()

    traits = traits_def(NoTerminator(), HasParent(LayerOp))

    def __init__(self, axis: str, bounds: Sequence[int]) -> None:
        super().__init__(
            properties={
                "axis": StringAttr(axis),
                "parts": int_attr(len(bounds) // 6 if axis == TILES else len(bounds) - 1),
                "at": int_array(bounds),
            },
            regions=[Region()],
        )

    @property
    def axis_name(self) -> str:
        return self.axis.data

    @property
    def bounds(self) -> tuple[int, ...]:
        """The split points ``at`` (axis ``tiles``: the tiles' six numbers each)."""
        return int_tuple(self.at)

    @property
    def num_tiles(self) -> int:
        """The number of tiles (= packages once packaged)."""
        return self.parts.value.data

    def layer(self) -> LayerOp | None:
        """The enclosing layer."""
        p = self.parent_op()
        return p if isinstance(p, LayerOp) else None

    def candidate_index(self) -> int:
        """Position among the layer's candidates."""
        layer = self.layer()
        if layer is None:
            return 0
        return layer.candidates().index(self)

    def packages(self) -> list[PackageOp]:
        """The packages (empty before ``ifp-package``)."""
        blk = self.body.blocks.first
        return [] if blk is None else cast(list[PackageOp], list(blk.ops))

    def tiles(self, out_shape: tuple[int, int, int]) -> list[tuple[int, int, int, int, int, int]]:
        """The tiles ``(w0, w1, c0, c1, h0, h1)`` for a layer output ``(C, H, W)``."""
        co, oh, ow = out_shape
        b = self.bounds
        if self.axis_name == TILES:
            return [cast(tuple[int, int, int, int, int, int], tuple(b[i:i + 6]))
                    for i in range(0, len(b), 6)]
        if self.axis_name == "w":
            return [(b[i], b[i + 1], 0, co, 0, oh) for i in range(len(b) - 1)]
        return [(0, ow, b[i], b[i + 1], 0, oh) for i in range(len(b) - 1)]

    def verify_(self) -> None:
        self.verify_own()

    def verify_own(self) -> None:
        """The candidate's own checks (see the class docstring): ``verify_`` without
        xDSL's generic checks of an IRDL op (properties' presence and types, operands,
        regions, traits), which IRDL runs first."""
        axis = self.axis_name
        b = self.bounds
        who = f"ifp.candidate {axis} parts {self.parts.value.data}"
        if axis == TILES:
            self._verify_tiles(who)
            return
        if axis not in AXES:
            raise VerifyException(f"{who}: axis must be 'w', 'c' or 'tiles'")
        if len(b) != self.parts.value.data + 1 or len(b) < 2:
            raise VerifyException(f"{who}: 'at' must have parts + 1 entries, got {list(b)}")
        if b[0] != 0 or any(x >= y for x, y in itertools.pairwise(b)):
            raise VerifyException(
                f"{who}: 'at' must increase strictly from 0, got {list(b)}"
            )
        layer = self.layer()
        if layer is None:
            return
        co, _oh, ow = layer.out_shape
        end = ow if axis == "w" else co
        if b[-1] != end:
            raise VerifyException(
                f"{who}: 'at' must end at the layer's {'width' if axis == 'w' else 'channels'} "
                f"{end}, got {list(b)}"
            )
        self._verify_packages(who, layer)

    def _verify_tiles(self, who: str) -> None:
        n = self.parts.value.data
        layer = self.layer()
        if layer is not None:  # the same tiles of the same output verified before?
            at, out = self.at, layer.out_shape
            seen = _TILES_VERIFIED.get(id(at))
            if seen is not None and seen[0] is at and seen[1:] == (n, out):
                self._verify_packages(who, layer)
                return
        b = self.bounds
        if n < 1 or len(b) != 6 * n:
            raise VerifyException(f"{who}: 'at' must have 6 entries (w0, w1, c0, c1, h0, h1) "
                                  f"per tile, got {len(b)} for {n} tiles")
        t = np.asarray(b, np.int64).reshape(n, 6)
        if (t[:, 0::2] < 0).any() or (t[:, 1::2] <= t[:, 0::2]).any():
            i = int(np.flatnonzero((t[:, 0::2] < 0).any(1) | (t[:, 1::2] <= t[:, 0::2]).any(1))[0])
            w0, w1, c0, c1, h0, h1 = (int(x) for x in t[i])
            raise VerifyException(f"{who}: tile {i} {_tile_text((w0, w1, c0, c1, h0, h1))} "
                                  "is empty or negative")
        layer = self.layer()
        if layer is None:
            return
        co, oh, ow = layer.out_shape
        hi = t[:, 1::2].max(axis=0)
        if hi[0] > ow or hi[1] > co or hi[2] > oh:
            raise VerifyException(f"{who}: a tile exceeds the layer's output {co}x{oh}x{ow}")
        vol = (t[:, 1] - t[:, 0]) * (t[:, 3] - t[:, 2]) * (t[:, 5] - t[:, 4])
        lo_, hi_ = t[:, 0::2], t[:, 1::2]
        if n <= 64:  # all pairs at once (n x n x 3)
            hit = (np.minimum(hi_[:, None], hi_[None]) > np.maximum(lo_[:, None], lo_[None])
                   ).all(2)
            hit &= np.triu(np.ones((n, n), bool), 1)
            if hit.any():
                i, j = (int(x) for x in np.argwhere(hit)[0])
                raise VerifyException(f"{who}: tiles {i} and {j} overlap")
        for i in range(n - 1 if n > 64 else 0):  # O(n) memory: tile i against the later ones
            hit = (np.minimum(hi_[i], hi_[i + 1:]) > np.maximum(lo_[i], lo_[i + 1:])).all(1)
            if hit.any():
                j = i + 1 + int(np.argmax(hit))
                raise VerifyException(f"{who}: tiles {i} and {j} overlap")
        if int(vol.sum()) != co * oh * ow:
            raise VerifyException(f"{who}: the tiles cover {int(vol.sum())} of the output's "
                                  f"{co * oh * ow} elements")
        if len(_TILES_VERIFIED) > 1 << 14:
            _TILES_VERIFIED.clear()
        _TILES_VERIFIED[id(self.at)] = (self.at, n, (co, oh, ow))
        self._verify_packages(who, layer)

    def _verify_packages(self, who: str, layer: LayerOp) -> None:
        if len(self.body.blocks) > 1:
            raise VerifyException(f"{who}: the body must have at most one block")
        pkgs = self.packages()
        if not pkgs:
            return
        for op in pkgs:
            if not isinstance(op, PackageOp):
                raise VerifyException(f"{who}: '{op.name}' is not an ifp.package")
        tiles = self.tiles(layer.out_shape)
        if len(pkgs) != len(tiles):
            raise VerifyException(f"{who}: has {len(pkgs)} packages, expected one per tile "
                                  f"({len(tiles)})")
        for i, (p, t) in enumerate(zip(pkgs, tiles, strict=True)):
            if p.tile != t:
                w0, w1, c0, c1, h0, h1 = t
                raise VerifyException(
                    f"{who}: package {i} has tile {_tile_text(p.tile)}, expected "
                    f"w={w0}:{w1} c={c0}:{c1} h={h0}:{h1} (the candidate's tiles in order)"
                )

    def print(self, printer: Printer) -> None:
        printer.print_string(f" {self.axis_name} parts {self.parts.value.data} at ")
        printer.print_string("[" + ", ".join(map(str, self.bounds)) + "]")
        if self.makespan is not None:
            printer.print_string(f" makespan {self.makespan.value.data}")
        printer.print_op_attributes(self.attributes, print_keyword=True)
        _print_region_if_any(printer, self.body)

    @classmethod
    def parse(cls, parser: Parser) -> CandidateOp:
        axis = parser.parse_optional_keyword_in((*AXES, TILES))
        if axis is None:
            parser.raise_error("ifp.candidate: expected the axis, 'w', 'c' or 'tiles'")
        parser.parse_keyword("parts", " after the ifp.candidate axis")
        parts = parser.parse_integer(allow_boolean=False, allow_negative=False)
        parser.parse_keyword("at", " (the split points) in ifp.candidate")
        at = parser.parse_comma_separated_list(
            parser.Delimiter.SQUARE, lambda: parser.parse_integer(allow_boolean=False)
        )
        props: dict[str, Attribute] = {
            "axis": StringAttr(axis), "parts": int_attr(parts), "at": int_array(at)
        }
        if parser.parse_optional_keyword("makespan") is not None:
            props["makespan"] = int_attr(
                parser.parse_integer(allow_boolean=False, allow_negative=False))
        attributes = _parse_attributes(parser)
        region = _parse_region_if_any(parser)
        return cls.create(properties=props, attributes=attributes, regions=[region])


def _tile_text(t: tuple[int, int, int, int, int, int]) -> str:
    return f"w={t[0]}:{t[1]} c={t[2]}:{t[3]} h={t[4]}:{t[5]}"


# ------------------------------------------------------------------------------ package
_TILE = ("w", "c", "h")
NEST_PROPS = ("og", "rb", "chunk", "in_cols")
"""A package's loop-nest properties, in :class:`~vfpga.compiler.ifpgen.LoopNest` order."""
_INFO = ("latency", "core")
_BODY_OPS = frozenset({LoadOp, ConvOp, PoolOp, EltwiseOp, SaveOp})


@irdl_op_definition
class PackageOp(IRDLOperation):
    """One instruction frame package: the self-contained instruction sequence computing
    one tile of its layer on one core.

    Properties: the tile ``w0 w1 c0 c1 h0 h1`` (half-open ranges, printed ``w=0:5``); the
    loop nest chosen for it (``og`` output channels per channel group, ``rb`` output rows
    per band, ``chunk`` input channels per weight chunk, 0 for none, ``in_cols`` input
    columns); the bytes it uses
    of each buffer ``ibuf wbuf pbuf obuf abuf`` (set with the instructions, by
    ``ifp-lower-to-isa``: the end of the highest byte its instructions write in each
    buffer); its predicted ``latency`` in cycles alone on a core; and its default logical
    ``core``. The layer index and candidate id are those of the enclosing ``ifp.layer`` /
    ``ifp.candidate`` (:meth:`layer_index`, :meth:`candidate_index`).

    The instructions (set by ``ifp-lower-to-isa``) take one of two forms: the ``code``
    property, the packed 64-byte instruction words (:mod:`vfpga.isa.codec`, header fields
    ``core`` and ``layer`` zero: the ``.vfb`` target sets them), printed ``code =
    "<hex>"``; or, after ``ifp-materialize-isa``, a body block of ``isa.load``,
    ``isa.conv``, ``isa.pool``, ``isa.eltwise`` and ``isa.save`` ops without ``core`` or
    ``layer`` fields, for ISA-level rewrites. Never both. Verified: non-empty tile ranges
    within the layer's output; the usage within the module's ``vfpga.buffers``; only
    those instruction ops; ``code`` a non-empty multiple of 64 bytes.
    """

    name = "ifp.package"

    w0 = prop_def(IntegerAttr)
    w1 = prop_def(IntegerAttr)
    c0 = prop_def(IntegerAttr)
    c1 = prop_def(IntegerAttr)
    h0 = prop_def(IntegerAttr)
    h1 = prop_def(IntegerAttr)
    og = opt_prop_def(IntegerAttr)
    rb = opt_prop_def(IntegerAttr)
    chunk = opt_prop_def(IntegerAttr)
    in_cols = opt_prop_def(IntegerAttr)
    ibuf = opt_prop_def(IntegerAttr)
    wbuf = opt_prop_def(IntegerAttr)
    pbuf = opt_prop_def(IntegerAttr)
    obuf = opt_prop_def(IntegerAttr)
    abuf = opt_prop_def(IntegerAttr)
    latency = opt_prop_def(IntegerAttr)
    core = opt_prop_def(IntegerAttr)
    code = opt_prop_def(BytesAttr)
    body = region_def()

    traits = traits_def(NoTerminator(), HasParent(CandidateOp))

    SCALARS: ClassVar[tuple[str, ...]] = (*NEST_PROPS, *BUFFER_NAMES, *_INFO)

    @staticmethod
    def build(  # type: ignore[override]  # a constructor, not IRDLOperation.build's signature
        tile: tuple[int, int, int, int, int, int],
        nest: tuple[int, int, int, int] | None = None,
        **scalars: int,
    ) -> PackageOp:
        """A package of ``tile = (w0, w1, c0, c1, h0, h1)`` with loop nest ``(og, rb,
        chunk, in_cols)`` and optional usage / latency / core values, without
        instructions."""
        w0, w1, c0, c1, h0, h1 = tile
        props: dict[str, Attribute] = {
            "w0": int_attr(w0), "w1": int_attr(w1), "c0": int_attr(c0), "c1": int_attr(c1),
            "h0": int_attr(h0), "h1": int_attr(h1),
        }
        if nest is not None:
            og, rb, chunk, in_cols = nest
            props["og"], props["rb"] = int_attr(og), int_attr(rb)
            props["chunk"], props["in_cols"] = int_attr(chunk), int_attr(in_cols)
        for k, v in scalars.items():
            if k not in PackageOp.SCALARS:
                raise ValueError(f"ifp.package has no property '{k}'")
            props[k] = int_attr(v)
        # ``create(properties=props, regions=[Region()])`` without the generic work, as
        # vfpga.dialects.isa.new_isa_op (no operands, results, successors or property
        # defaults): a ResNet-50 has ~10^4 packages; tests/test_static_passes.py checks
        # the op equals create's
        op = PackageOp.__new__(PackageOp)
        op.properties = props
        op.attributes = {}
        op.location = UNKNOWN_LOC
        op.add_region(Region())
        return op

    # -- accessors ---------------------------------------------------------------------
    def get(self, name: str) -> int | None:
        """An integer property (None when absent)."""
        return _int(self, name)

    @property
    def tile(self) -> tuple[int, int, int, int, int, int]:
        """``(w0, w1, c0, c1, h0, h1)``."""
        p: dict[str, Any] = self.properties
        return (p["w0"].value.data, p["w1"].value.data, p["c0"].value.data,
                p["c1"].value.data, p["h0"].value.data, p["h1"].value.data)

    def usage(self) -> dict[str, int] | None:
        """Bytes used per buffer, or None before lowering."""
        if "ibuf" not in self.properties:
            return None
        return {b: _int(self, b) or 0 for b in BUFFER_NAMES}

    def set_int(self, name: str, value: int) -> None:
        """Set integer property ``name`` (one of :attr:`SCALARS`)."""
        if name not in self.SCALARS:
            raise ValueError(f"ifp.package has no settable property '{name}'")
        self.properties[name] = int_attr(int(value))

    def instructions(self) -> list[IsaOp]:
        """The instruction ops (empty before lowering and while the package holds packed
        ``code``)."""
        blk = self.body.blocks.first
        return [] if blk is None else cast(list[IsaOp], list(blk.ops))

    @property
    def code_bytes(self) -> bytes | None:
        """The packed instruction words (None when the package has no ``code``)."""
        a = self.properties.get("code")
        return None if a is None else cast(BytesAttr, a).data

    def set_code(self, words: bytes | None) -> None:
        """Set (or with None, drop) the packed instruction words."""
        if words is None:
            self.properties.pop("code", None)
        else:
            self.properties["code"] = BytesAttr(words)

    def insn_fields(self) -> list[tuple[Opcode, dict[str, int | float]]]:
        """The instructions as ``(opcode, fields)`` (:func:`~vfpga.dialects.isa.
        op_to_fields` form, no ``core``/``layer``): those ``ifp-lower-to-isa`` generated
        for the current ``code`` in this process (:mod:`vfpga.dialects.derived`), else
        the decoded ``code``, else the body's ``isa`` ops (empty before lowering)."""
        code = self.properties.get("code")
        if code is None:
            return [op_to_fields(i) for i in self.instructions()]
        insns = derived.lookup(self, INSNS_KEY, code)
        if insns is None:
            insns = words_to_fields(cast(BytesAttr, code).data)
            derived.attach(self, INSNS_KEY, code, insns)
        return cast(list[tuple[Opcode, dict[str, int | float]]], insns)

    def words(self) -> bytes:
        """The packed instruction words: ``code``, else the body's ``isa`` ops encoded
        (empty before lowering)."""
        code = self.code_bytes
        if code is not None:
            return code
        body = self.instructions()
        return encode_batch([op_to_fields(i) for i in body]) if body else b""

    def set_body(self, ops: Sequence[Operation] | None) -> None:
        """Replace the body by one block of ``ops`` (None: no block)."""
        for blk in list(self.body.blocks):
            self.body.detach_block(blk).erase()
        if ops is not None:
            self.body.add_block(Block(ops))

    def candidate(self) -> CandidateOp | None:
        """The enclosing candidate."""
        p = self.parent_op()
        return p if isinstance(p, CandidateOp) else None

    def layer_index(self) -> int | None:
        """Index of the enclosing layer."""
        c = self.candidate()
        layer = c.layer() if c is not None else None
        return None if layer is None else layer.index_value

    def candidate_index(self) -> int | None:
        """Position of the enclosing candidate within its layer."""
        c = self.candidate()
        return None if c is None else c.candidate_index()

    # -- verification ------------------------------------------------------------------
    def verify_(self) -> None:
        w0, w1, c0, c1, h0, h1 = self.tile
        who = f"ifp.package w={w0}:{w1} c={c0}:{c1}"
        if not (0 <= w0 < w1 and 0 <= c0 < c1 and 0 <= h0 < h1):
            raise VerifyException(f"{who} h={h0}:{h1}: tile ranges must be non-empty and >= 0")
        cand = self.candidate()
        layer = cand.layer() if cand is not None else None
        if layer is not None:
            co, oh, ow = layer.out_shape
            if w1 > ow or c1 > co or h1 > oh:
                raise VerifyException(
                    f"{who} h={h0}:{h1}: tile exceeds the layer's output {co}x{oh}x{ow} "
                    "(channels x rows x columns)"
                )
        self.verify_contents(module_buffers(self))

    def verify_contents(self, sizes: dict[str, int] | None) -> None:
        """The checks of :meth:`verify_` beyond the tile's place in its layer: scalars
        >= 0, usage within the buffer ``sizes`` (the module's ``vfpga.buffers``), the
        ``code`` length, the body's ops (their own fields are checked by their ops)."""
        w0, w1, c0, c1, _h0, _h1 = self.tile
        who = f"ifp.package w={w0}:{w1} c={c0}:{c1}"
        props = self.properties
        for n in self.SCALARS:
            a = props.get(n)
            if a is not None and cast(IntegerAttr, a).value.data < 0:
                raise VerifyException(f"{who}: '{n}' = {cast(IntegerAttr, a).value.data} "
                                      "must be >= 0")
        if sizes is not None and "ibuf" in props:
            for b in BUFFER_NAMES:
                a = props.get(b)
                used = 0 if a is None else cast(IntegerAttr, a).value.data
                if b in sizes and used > sizes[b]:
                    raise VerifyException(
                        f"{who}: uses {used} bytes of {b}, which has {sizes[b]} "
                        f"(module attribute {BUFFERS_ATTR})"
                    )
        if len(self.body.blocks) > 1:
            raise VerifyException(f"{who}: the body must have at most one block")
        blk = self.body.blocks.first
        code = self.code_bytes
        if code is not None:
            if not code or len(code) % INSN_BYTES:
                raise VerifyException(
                    f"{who}: code has {len(code)} bytes, not a positive multiple of the "
                    f"{INSN_BYTES}-byte instruction word"
                )
            if blk is not None and blk.first_op is not None:
                raise VerifyException(
                    f"{who}: holds both packed code and isa ops (keep one: "
                    "ifp-materialize-isa unpacks the code)"
                )
        if blk is None:
            return
        body = _BODY_OPS
        for op in blk.ops:  # (the instruction ops check their own fields)
            if type(op) not in body:
                raise VerifyException(
                    f"{who}: '{op.name}' is not allowed in a package (only isa.load, isa.conv, "
                    "isa.pool, isa.eltwise, isa.save)"
                )

    # -- format ------------------------------------------------------------------------
    def print(self, printer: Printer) -> None:
        w0, w1, c0, c1, h0, h1 = self.tile
        parts = [f"w={w0}:{w1}", f"c={c0}:{c1}", f"h={h0}:{h1}"]
        for n in self.SCALARS:
            v = _int(self, n)
            if v is not None:
                parts.append(f"{n}={v}")
        code = self.code_bytes
        if code is not None:
            parts.append(f'code="{code.hex()}"')
        printer.print_string(" " + " ".join(parts))
        printer.print_op_attributes(self.attributes, print_keyword=True)
        _print_region_if_any(printer, self.body)

    @classmethod
    def parse(cls, parser: Parser) -> PackageOp:
        props: dict[str, Attribute] = {}
        seen: set[str] = set()
        keys = (*_TILE, *cls.SCALARS)
        while (kw := parser.parse_optional_keyword_in(keys)) is not None:
            if kw in seen:
                parser.raise_error(f"ifp.package: '{kw}' given twice")
            seen.add(kw)
            parser.parse_punctuation("=", f" after '{kw}'")
            a = parser.parse_integer(allow_boolean=False, allow_negative=False)
            if kw in _TILE:
                parser.parse_punctuation(":", f" in the '{kw}' range (A:B)")
                b = parser.parse_integer(allow_boolean=False, allow_negative=False)
                props[f"{kw}0"], props[f"{kw}1"] = int_attr(a), int_attr(b)
            else:
                props[kw] = int_attr(a)
        if parser.parse_optional_keyword("code") is not None:
            parser.parse_punctuation("=", " after 'code'")
            text = parser.parse_str_literal(" (the packed instruction words in hex)")
            try:
                props["code"] = BytesAttr(bytes.fromhex(text))
            except ValueError:
                parser.raise_error("ifp.package: 'code' must be an even number of hex digits")
        for t in _TILE:
            if t not in seen:
                parser.raise_error(f"ifp.package: missing '{t}=A:B'")
        attributes = _parse_attributes(parser)
        region = _parse_region_if_any(parser)
        return cls.create(properties=props, attributes=attributes, regions=[region])


_PACKAGE_PROPS = {n: IntegerAttr for n in (*PackageOp.SCALARS, "w0", "w1", "c0", "c1", "h0",
                                            "h1")} | {"code": BytesAttr}


def _package_looks_valid(pkg: Operation, limits: Sequence[tuple[str, int]]) -> bool:
    """A fast screen of :func:`_verify_package` for the common case: True only when
    every one of its checks passes (so a True needs no further check); False when any
    might fail (the caller then runs the checks themselves for the exact message). One
    loop over the properties (known name and type, scalars >= 0), the usage against
    ``limits`` (the module's buffer sizes), the region, the code length and the body's
    op types, reading xDSL's fields directly. The body's ``isa`` ops are verified by the
    caller either way."""
    props: dict[str, Any] = pkg.properties
    for name, a in props.items():
        want = _PACKAGE_PROPS.get(name)  # (xDSL's IntegerAttr, BytesAttr are final classes)
        if want is IntegerAttr:  # (a tile is >= 0 by its candidate, a scalar must be)
            if type(a) is not IntegerAttr or a.value.data < 0:
                return False
        elif want is None or type(a) is not want:
            return False
    if pkg.results or pkg._operands or pkg._successors or len(pkg.regions) != 1:
        return False
    if limits and "ibuf" in props:
        for b, cap in limits:
            a = props.get(b)
            if a is not None and a.value.data > cap:
                return False
    region = pkg.regions[0]
    blk = region.first_block
    if blk is not None and blk is not region.last_block:
        return False
    code = props.get("code")
    if code is not None:
        n = len(code.data)
        if n == 0 or n % INSN_BYTES or (blk is not None and blk.first_op is not None):
            return False
    if blk is not None:
        body = _BODY_OPS
        return all(type(op) in body for op in blk.ops)
    return True


_CANDIDATE_PROPS: dict[str, type[Attribute]] = {
    "axis": StringAttr, "parts": IntegerAttr, "at": DenseArrayBase, "makespan": IntegerAttr}


def _candidate_looks_valid(cand: CandidateOp) -> bool:
    """A fast screen of xDSL's generic checks of ``cand`` (what ``verify()`` checks
    besides :meth:`CandidateOp.verify_own`): True only when they all pass: its properties
    are the defined ones with their exact types (``makespan`` optional), it has no
    operands, results, successors, attributes or block arguments, one region of at most
    one block (``NoTerminator``), and a layer as its parent (``HasParent``)."""
    props = cand.properties
    if "axis" not in props or "parts" not in props or "at" not in props:
        return False
    for name, a in props.items():
        if type(a) is not _CANDIDATE_PROPS.get(name):
            return False
    if cand.results or cand._operands or cand._successors or cand.attributes:
        return False
    if len(cand.regions) != 1 or not isinstance(cand.parent_op(), LayerOp):
        return False
    blk = cand.regions[0].first_block
    return blk is None or (blk is cand.regions[0].last_block and not blk.args)


def _verify_package(pkg: Operation, sizes: dict[str, int] | None) -> None:
    """The checks of ``verify()`` on package ``pkg`` within :func:`verify_layer_tree`
    (but its isa ops'): its properties' names and types, no operands, results or
    successors, one region, and :meth:`PackageOp.verify_contents`."""
    for name, a in pkg.properties.items():
        want = _PACKAGE_PROPS.get(name)
        if want is None or not isinstance(a, want):
            raise VerifyException(
                f"ifp.package: property '{name}' = {a} is not "
                f"{'known' if want is None else want.name}")
    if pkg.operands or pkg.results or pkg.successors or len(pkg.regions) != 1:
        raise VerifyException("ifp.package has no operands, results or successors "
                              "and one region")
    cast(PackageOp, pkg).verify_contents(sizes)


def verify_layer_tree(layer: LayerOp) -> None:
    """Verify ``layer``, its candidates and their packages (and any ``isa`` ops in them)
    with the same checks as ``verify()`` on each, but computing the layer's shape and the
    module's buffer sizes once: a ResNet-50 has ~10^4 packages. A package's generic
    checks (its properties' types, one region, no operands or results) are done here;
    its tile's place in the layer follows from its candidate's check that the packages
    are its tiles in order. Each package is first screened by
    :func:`_package_looks_valid` (exact types, one loop over its properties); only a
    package the screen does not pass runs the checks one by one (:func:`_verify_package`,
    which raises the exact message). Likewise a candidate that passes
    :func:`_candidate_looks_valid` (xDSL's generic checks) runs only its own
    (:meth:`CandidateOp.verify_own`; on a failure, ``verify()`` raises it as xDSL
    words it)."""
    layer.verify(verify_nested_ops=False)
    sizes = module_buffers(layer)
    limits = [] if sizes is None else [(b, sizes[b]) for b in BUFFER_NAMES if b in sizes]
    for cand in layer.candidates():
        if not _candidate_looks_valid(cand):
            cand.verify(verify_nested_ops=False)
        else:
            try:
                cand.verify_own()
            except VerifyException:
                cand.verify(verify_nested_ops=False)  # raises it as verify() words it
                raise
        blk = cand.body.first_block
        if blk is None:
            continue
        for pkg in blk.ops:
            if not _package_looks_valid(pkg, limits):
                _verify_package(pkg, sizes)
            body = pkg.regions[0].first_block
            if body is not None:
                for ins in body.ops:
                    ins.verify()


Ifp = Dialect("ifp", [LayerOp, CandidateOp, PackageOp], [])
"""The ``ifp`` dialect."""

