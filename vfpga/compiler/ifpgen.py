"""Instruction frame packages: the self-contained instruction sequence of one tile.

A tile is an output range along width ``[w0, w1)``, output channels ``[c0, c1)`` and rows
``[h0, h1)`` (by default the full height). Inside an IFP the work is a loop nest, chosen
to fit the core's buffers:

* **channel groups** (``og`` output channels at a time): parameters (and, if they fit,
  all the group's weights) are loaded once per group;
* **row bands** (``rb`` output rows at a time): the input rows of the band (with halo) are
  loaded, computed and saved, double-buffered in two ibuf slots and two obuf slots;
* **input-channel chunks** (dense convolutions whose weights do not fit wbuf): each chunk
  loads its weights and input slice and accumulates int32 partial sums in abuf
  (``acc_out`` / ``acc_in``); the last chunk requantizes to obuf. A fully connected layer
  whose chunks would be shorter than a DDR burst stores its weights chunk by chunk
  (:func:`weight_chunk`): every tile then uses that one chunk size and each chunk's
  weight LOAD is one contiguous box.

Token protocol (docs/compiler.md): every group starts by consuming the CALC->LOAD credit
with its first LOAD and the SAVE->CALC credit with its first obuf-writing CALC, and hands
both back with its last CALC and last SAVE; in between, slot ``s % 2`` of step ``s`` is
recycled through tokens. Each IFP is therefore self-contained and may follow any other IFP
on any core, which is what lets the dynamic pass reassign IFPs without touching them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from vfpga.compiler.plan import (
    MemoryPlan,
    Placement,
    chunk_weight_offset,
    chunked_weights,
    nchw,
)
from vfpga.compiler.resize_geometry import ResizeGeometry
from vfpga.errors import CompileError
from vfpga.frontend.qgraph import (
    QAdd,
    QConv,
    QPool,
    QResize,
    QTensor,
    conv_in_extent,
    conv_kernel_extent,
)
from vfpga.hw.config import HardwareConfig
from vfpga.hw.costs import DDR_BURST_BYTES, core_bytes_per_cycle
from vfpga.isa.effects import upsampled_taps
from vfpga.isa.float32 import eltwise_offset, mul_ratio, requant_scale
from vfpga.isa.spec import (
    ACT_TABLE_BYTES,
    PARAM_RECORD_BYTES,
    Act,
    Buffer,
    Dep,
    EltOp,
    FieldDict,
    Opcode,
    PoolMode,
    conv_pbuf_bytes,
)

Insn = tuple[Opcode, FieldDict]
_ACT = {"none": Act.NONE, "relu": Act.RELU, "relu6": Act.RELU6, "table": Act.TABLE}


class TileDoesNotFit(CompileError):
    """A tile cannot be computed within the core's buffers (even one row at a time)."""


@dataclass(frozen=True)
class Tile:
    """Output tile: columns ``[w0, w1)``, output channels ``[c0, c1)``, rows ``[h0, h1)``
    (``h1`` None: to the last row)."""

    w0: int
    w1: int
    c0: int
    c1: int
    h0: int = 0
    h1: int | None = None

    def rows(self, oh: int) -> tuple[int, int]:
        """``(h0, h1)`` of the tile in an output of ``oh`` rows."""
        return self.h0, oh if self.h1 is None else self.h1


@dataclass
class LayerSpec:
    """One accelerator layer with everything code generation needs."""

    index: int
    node: QConv | QPool | QAdd | QResize
    kind: str  # conv | pool | add | resize
    in_shape: tuple[int, int, int]  # C, H, W of the (first) input
    out_shape: tuple[int, int, int]  # C, H, W of the output
    ins: list[Placement]
    out: Placement
    in_zp: list[int]
    out_zp: int
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right (effective)
    groups: int = 1
    w_off: int = 0
    p_off: int = 0
    macs: int = 0
    #: an element-wise layer whose operand B is per-channel ``[N, C, 1, 1]``
    bcast: bool = False
    #: CONV kernel dilation and input upsampling (zero insertion), ``(1, 1)``: none;
    #: ``pads`` are then those of the upsampled input
    dil: tuple[int, int] = (1, 1)
    ups: tuple[int, int] = (1, 1)
    #: the requantization fields of the layer's POOL / ELTWISE words (ISA v3), derived
    #: once per layer (:func:`pool_params`, :func:`eltwise_params`)
    calc_fields: dict[str, float | int] = field(default_factory=dict)
    #: a bilinear resize layer's source rows and columns (RESIZE, ISA v4)
    resize: ResizeGeometry | None = None
    plan_cache: dict[tuple, _Plan] = field(default_factory=dict, repr=False, compare=False)
    fit_cache: dict[tuple, _Plan | None] = field(default_factory=dict, repr=False,
                                                compare=False)
    #: :func:`weight_chunk` per hardware (``id(hw)``)
    chunk_cache: dict[int, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def plain(self) -> bool:
        """No dilation and no upsampling (the ISA v2 geometry)."""
        return self.dil == (1, 1) and self.ups == (1, 1)

    @property
    def kernel_extent(self) -> tuple[int, int]:
        """Rows and columns the (dilated) kernel spans."""
        return ((self.kernel[0] - 1) * self.dil[0] + 1, (self.kernel[1] - 1) * self.dil[1] + 1)

    @property
    def cig(self) -> int:
        return self.in_shape[0] // self.groups

    @property
    def opg(self) -> int:
        return self.out_shape[0] // self.groups

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.cig == 1 and self.opg == 1

    @property
    def grouped(self) -> bool:
        """A grouped convolution that is not depthwise."""
        return self.kind == "conv" and self.groups > 1 and not self.depthwise

    @property
    def channel_unit(self) -> int:
        """Output channels a tile boundary must be aligned to: whole groups of a grouped
        convolution whose groups are not a multiple of 8 channels, else 1."""
        if self.grouped and self.opg % 8:
            return self.opg
        return 1


@dataclass
class IfpCode:
    """The instructions of one IFP (fields by name; core and layer filled at linking)."""

    layer: int
    tile: Tile
    rows: tuple[int, int]  # the tile's output rows [h0, h1)
    insns: list[Insn]
    use: dict[str, int] = field(default_factory=dict)
    latency: int = 0


def layer_specs(plan: MemoryPlan) -> list[LayerSpec]:
    """The accelerator layers of a planned graph, in execution order."""
    g = plan.graph
    specs: list[LayerSpec] = []
    for n in g.nodes:
        if isinstance(n, QConv):
            xt, yt = g.tensors[n.input], g.tensors[n.output]
            _, ci, h, w = nchw(xt)
            _, co, oh, ow = nchw(yt)
            kh, kw = int(n.weight.shape[2]), int(n.weight.shape[3])
            sh, sw = n.strides
            pt, pl, pb, pr = n.pads
            vh, vw = conv_in_extent(n, h, w)
            ekh, ekw = conv_kernel_extent(n)
            s = LayerSpec(len(specs), n, "conv", (ci, h, w), (co, oh, ow), [plan.places[n.input]],
                          plan.places[n.output], [xt.zero_point], yt.zero_point, (kh, kw),
                          (sh, sw), _eff_pads(vh, vw, oh, ow, ekh, ekw, sh, sw, pt, pb, pl, pr),
                          n.groups, plan.consts[n.name].weights, plan.consts[n.name].params,
                          dil=n.dilations, ups=n.upsample)
            if n.upsample == (1, 1):
                s.macs = co * oh * ow * kh * kw * (ci // n.groups)
            else:  # products with inserted zeros are not counted
                s.macs = co * (ci // n.groups) * (
                    upsampled_taps(h, kh, sh, pt, n.dilations[0], n.upsample[0], oh)
                    * upsampled_taps(w, kw, sw, pl, n.dilations[1], n.upsample[1], ow))
        elif isinstance(n, QPool):
            xt, yt = g.tensors[n.input], g.tensors[n.output]
            _, ci, h, w = nchw(xt)
            _, co, oh, ow = nchw(yt)
            if n.kind == "global_avg":
                kh, kw, sh, sw, pads = h, w, 1, 1, (0, 0, 0, 0)
            else:
                kh, kw = n.kernel
                sh, sw = n.strides
                pt, pl, pb, pr = n.pads
                pads = _eff_pads(h, w, oh, ow, kh, kw, sh, sw, pt, pb, pl, pr)
            s = LayerSpec(len(specs), n, "pool", (ci, h, w), (co, oh, ow), [plan.places[n.input]],
                          plan.places[n.output], [xt.zero_point], yt.zero_point, (kh, kw),
                          (sh, sw), pads)
            s.calc_fields = pool_params(pool_mode(n), xt, yt, h * w)
        elif isinstance(n, QResize):
            xt, yt = g.tensors[n.input], g.tensors[n.output]
            _, ci, h, w = nchw(xt)
            _, co, oh, ow = nchw(yt)
            s = LayerSpec(len(specs), n, "resize", (ci, h, w), (co, oh, ow),
                          [plan.places[n.input]], plan.places[n.output], [xt.zero_point],
                          yt.zero_point)
            s.resize = ResizeGeometry(n.coord, n.scales, (h, w), (oh, ow))
            s.calc_fields = resize_params(s.resize, xt, yt)
        elif isinstance(n, QAdd):
            at, bt, yt = g.tensors[n.a], g.tensors[n.b], g.tensors[n.output]
            _, ci, h, w = nchw(at)
            s = LayerSpec(len(specs), n, "add", (ci, h, w), nchw(yt)[1:],
                          [plan.places[n.a], plan.places[n.b]], plan.places[n.output],
                          [at.zero_point, bt.zero_point], yt.zero_point)
            s.calc_fields = eltwise_params(n, at.zero_point, bt.zero_point, yt.zero_point)
            s.bcast = nchw(bt)[2:] != nchw(at)[2:]
        else:
            continue
        specs.append(s)
    return specs


def _eff_pads(h: int, w: int, oh: int, ow: int, kh: int, kw: int, sh: int, sw: int,
              pt: int, pb: int, pl: int, pr: int) -> tuple[int, int, int, int]:
    """Padding that yields exactly the recorded output size (ceil-mode pooling adds rows
    or columns at the bottom/right)."""
    pb = max(pb, (oh - 1) * sh + kh - h - pt)
    pr = max(pr, (ow - 1) * sw + kw - w - pl)
    return pt, pb, pl, pr


# --------------------------------------------------------------------------- geometry
def _in_range(o0: int, o1: int, k: int, s: int, pad_lo: int, n: int,
              ups: int = 1) -> tuple[int, int, int, int]:
    """Input range ``[lo, hi)`` and padding (before, after) needed for outputs [o0, o1)
    of a window spanning ``k`` elements. With ``ups > 1`` the window slides over the
    input upsampled by zero insertion (element ``r`` at ``r * ups``): ``[lo, hi)`` are the
    input elements inside the window span and the padding is counted in upsampled
    positions (it includes the inserted zeros before the first and after the last)."""
    start = o0 * s - pad_lo
    end = (o1 - 1) * s - pad_lo + k
    if ups > 1:
        lo, hi = max(0, -(-start // ups)), min(n, (end - 1) // ups + 1)
        return lo, hi, lo * ups - start, end - ((hi - 1) * ups + 1)
    lo, hi = max(0, start), min(n, end)
    return lo, hi, lo - start, end - hi


def _real_span(span: int, ups: int) -> int:
    """Most input elements a window span of ``span`` upsampled positions can hold."""
    return (span - 1) // ups + 1


@dataclass
class _Plan:
    og: int
    rb: int
    chunk: int  # input channels per chunk (dense convs with chunked weights), 0 = no chunking
    in_cols: int


LoopNest = _Plan
"""Public name of a tile's loop nest, :func:`choose_plan`'s result: ``og`` output channels
per channel group, ``rb`` output rows per band, ``chunk`` input channels per weight chunk
(0: none), ``in_cols`` input columns of the tile."""


def _whole_groups(spec: LayerSpec, og: int) -> bool:
    """A grouped convolution processed ``og`` channels (whole groups) per CONV."""
    return og % spec.opg == 0


def _in_ch(spec: LayerSpec, og: int) -> int:
    """Input channels a channel group of ``og`` output channels reads: all of them for a
    dense conv, its own for depthwise, ``og/opg`` conv groups' worth for whole groups of a
    grouped conv, one conv group's for a slice within a conv group."""
    if spec.kind != "conv":
        return og
    if spec.groups == 1:
        return spec.in_shape[0]
    if spec.depthwise:
        return og
    return (og // spec.opg) * spec.cig if _whole_groups(spec, og) else spec.cig


def oc_segments(spec: LayerSpec, tile: Tile, og: int) -> list[tuple[int, int]]:
    """The output-channel ranges an IFP processes one after another: ``og`` channels at a
    time; for a grouped convolution either whole conv groups (when ``og`` is a multiple of
    the group size and the tile is aligned to groups) or slices that never cross a conv
    group boundary."""
    c0, c1 = tile.c0, tile.c1
    if not spec.grouped or (_whole_groups(spec, og) and c0 % spec.opg == 0
                            and c1 % spec.opg == 0):
        return [(a, min(a + og, c1)) for a in range(c0, c1, og)]
    segs = []
    a = c0
    while a < c1:
        b = min(a + og, (a // spec.opg + 1) * spec.opg, c1)
        segs.append((a, b))
        a = b
    return segs


def weight_chunk(spec: LayerSpec, hw: HardwareConfig) -> int:
    """Input channels per stored weight chunk of layer ``spec`` on ``hw``, or 0 when its
    weights are stored whole, ``[OC][KH][KW][IC]`` (docs/binary-format.md, DATA).

    A dense, plain convolution with a 1x1 output map (a fully connected layer: every tile
    is a range of output channels over the whole input) whose loop nest for the whole
    layer on one core chunks its weights into ``cs`` input channels, fewer than a DDR
    burst's bytes (:data:`~vfpga.hw.costs.DDR_BURST_BYTES`), stores them chunk by chunk:
    chunk ``q`` (input channels ``[q cs, min((q + 1) cs, IC))``) is ``[OC][KH][KW][its
    channels]`` at ``q cs OC KH KW`` bytes from the layer's weights
    (:func:`~vfpga.compiler.plan.chunk_weight_offset`). Every loop nest of the layer then
    chunks by ``cs`` (its channel groups ``og`` no larger than half of wbuf allows), so
    each chunk's weight LOAD is one contiguous box instead of ``og KH KW`` rows of ``cs``
    bytes (VGG-16's fc6: 12 544 rows of 5 bytes at a 512-byte stride). Other chunked
    layers read rows of at least a burst, or (spatial convolutions) pick different chunk
    sizes for tiles of different widths, and keep the whole layout."""
    key = id(hw)
    got = spec.chunk_cache.get(key)
    if got is None:
        got = spec.chunk_cache[key] = _weight_chunk(spec, hw)
    return got


def stored_data(plan: MemoryPlan, specs: list[LayerSpec], hw: HardwareConfig) -> bytes:
    """The DATA blob as stored in DDR for ``hw``: the plan's blob (weights
    ``[OC][KH][KW][IC]``) with the weights of every layer that :func:`weight_chunk` stores
    chunk by chunk rearranged so (:func:`~vfpga.compiler.plan.chunked_weights`; same
    offsets, same size). The plan's own blob when no layer is."""
    chunked = [(s, cs) for s in specs if (cs := weight_chunk(s, hw))]
    if not chunked:
        return plan.data
    mv = memoryview(plan.data)
    parts: list[object] = []
    pos = 0
    for s, cs in sorted(chunked, key=lambda sc: sc[0].w_off):
        (kh, kw), (ic, _, _), oc = s.kernel, s.in_shape, s.out_shape[0]
        at = s.w_off - plan.data_offset
        n = oc * kh * kw * ic
        w = np.frombuffer(mv[at : at + n], np.int8).reshape(oc, kh, kw, ic)
        parts += [mv[pos:at], chunked_weights(w, cs)]
        pos = at + n
    parts.append(mv[pos:])
    return b"".join(parts)  # type: ignore[arg-type]


def _weight_chunk(spec: LayerSpec, hw: HardwareConfig) -> int:
    if (spec.kind != "conv" or spec.groups != 1 or not spec.plain
            or spec.out_shape[1:] != (1, 1)):
        return 0
    try:
        whole = _choose_plan(spec, Tile(0, 1, 0, spec.out_shape[0]), hw, 0)
    except TileDoesNotFit:
        return 0
    return whole.chunk if whole.chunk < DDR_BURST_BYTES else 0


def _fit(spec: LayerSpec, wt: int, og: int, hw: HardwareConfig, oh: int,
         stored: int) -> _Plan | None:
    """Largest band height for ``og`` channels on a ``wt``-wide tile of ``oh`` rows, or
    None (computed once per layer, width, group size, rows and hardware: tiles of many
    shapes ask again). ``stored``: the layer's :func:`weight_chunk` (0: any chunk)."""
    key = (wt, og, id(hw), oh, stored)
    try:
        return spec.fit_cache[key]
    except KeyError:
        pass
    plan = spec.fit_cache[key] = _fit_uncached(spec, wt, og, hw, oh, stored)
    return plan


def _fit_uncached(spec: LayerSpec, wt: int, og: int, hw: HardwareConfig,
                  oh: int, stored: int) -> _Plan | None:
    b = hw.buffers
    if spec.resize is not None:
        return _fit_resize(spec.resize, wt, og, hw)
    kh, kw = spec.kernel
    ekh, ekw = spec.kernel_extent
    sh, sw = spec.stride
    uh, uw = spec.ups
    in_cols = (wt - 1) * sw + kw if spec.plain else min(
        spec.in_shape[2], _real_span((wt - 1) * sw + ekw, uw))
    chunk = 0
    ic = _in_ch(spec, og)
    if spec.kind == "conv":
        cig = spec.cig
        wbytes = og * kh * kw * (cig if spec.groups > 1 else ic)
        assert isinstance(spec.node, QConv)
        if conv_pbuf_bytes(og, _ACT[spec.node.act.kind]) > b["pbuf"]:
            return None
        if stored:  # weights stored chunk by chunk: every nest reads whole stored chunks
            if og * kh * kw * stored > b["wbuf"] // 2:
                return None
            chunk = stored
            ic = min(ic, chunk)
        elif wbytes > b["wbuf"]:
            if spec.groups != 1 or spec.node.fsum_in_scale is not None:
                return None  # (a fsum CONV sums its taps after all input channels)
            chunk = (b["wbuf"] // 2) // (og * kh * kw)
            chunk = chunk - chunk % 8 if chunk >= 8 else chunk
            if chunk < 1:
                return None
            ic = min(ic, chunk)
    if spec.kind == "pool" and isinstance(spec.node, QPool) and spec.node.kind == "global_avg":
        if spec.in_shape[1] * spec.in_shape[2] * og * 2 > b["ibuf"]:
            return None
        return _Plan(og, 1, 0, spec.in_shape[2])
    # the largest band height meeting every (monotone) buffer bound, in closed form
    best = min(oh, b["obuf"] // (2 * wt * og))
    if spec.kind == "add":
        best = min(best, b["ibuf"] // (2 * 2 * wt * og))
    else:  # input rows (rb - 1) * sh + kh (real: _real_span), double-buffered
        rows = b["ibuf"] // (2 * in_cols * ic)
        if spec.plain:
            best = min(best, (rows - kh) // sh + 1)
        elif rows < spec.in_shape[1]:  # (the real input rows of a band, padding not loaded)
            best = min(best, (rows * uh - ekh) // sh + 1)
    if chunk:
        best = min(best, b["abuf"] // (wt * og * 4))
    if best < 1:
        return None
    return _Plan(og, best, chunk, in_cols)


def _fit_resize(geo: ResizeGeometry, wt: int, og: int, hw: HardwareConfig) -> _Plan | None:
    """The band height of a resize tile ``wt`` columns wide (any position: the input
    columns are the most any ``wt`` output columns read), ``og`` channels a step: the
    largest whose every band's input rows fit half of ibuf and output half of obuf."""
    b = hw.buffers
    in_cols = geo.max_cols(wt)
    rows_fit = b["ibuf"] // (2 * in_cols * og)
    best = min(geo.out_hw[0], b["obuf"] // (2 * wt * og))
    lo = 0  # bands of ``lo`` rows fit (0: none known); ``best`` + 1 rows do not
    hi = best + 1
    while hi - lo > 1:  # band inputs grow with the band height: bisect
        mid = (lo + hi) // 2
        if int(geo.band_rows(mid).max()) <= rows_fit:
            lo = mid
        else:
            hi = mid
    if lo < 1:
        return None
    return _Plan(og, lo, 0, in_cols)


def choose_plan(spec: LayerSpec, tile: Tile, hw: HardwareConfig) -> _Plan:
    """The loop nest for a tile: the group size with the least estimated cost (DDR traffic
    at the core's bandwidth plus per-instruction setup). It depends only on the tile's
    width, channel count, row count and (grouped convolutions) alignment to the conv
    groups, so it is computed once per such shape of a layer."""
    opg = spec.opg if spec.grouped else 1
    h0, h1 = tile.rows(spec.out_shape[1])
    key: tuple = (tile.w1 - tile.w0, tile.c1 - tile.c0, tile.c0 % opg, tile.c1 % opg, id(hw),
                  h1 - h0)
    if spec.out.shuffle:
        m = spec.out.shuffle_c // spec.out.shuffle
        key = (*key, tile.c0 % m, tile.c1 % m)
    cached = spec.plan_cache.get(key)
    if cached is None:
        cached = _choose_plan(spec, tile, hw, weight_chunk(spec, hw))
        spec.plan_cache[key] = cached
    return cached


def _group_sizes(spec: LayerSpec, tile: Tile) -> list[int]:
    """The channel-group sizes a tile's loop nest may use, largest first."""
    ct = tile.c1 - tile.c0
    if spec.grouped:
        opg = spec.opg
        aligned = tile.c0 % opg == 0 and tile.c1 % opg == 0
        options = sorted({*(range(opg, ct + 1, opg) if aligned else ()),
                          *(range(8, min(opg, ct) + 1, 8) if opg % 8 == 0 else ())},
                         reverse=True)
    else:
        options = sorted({ct, *range(8, ct, 8)}, reverse=True)
    if spec.out.shuffle:  # stored shuffled: every channel chunk within one shuffle block
        m = spec.out.shuffle_c // spec.out.shuffle
        divs = [d for d in range(min(m, ct), 0, -1) if m % d == 0]
        options = [og for og in sorted({*options, *divs}, reverse=True)
                   if all(a // m == (b - 1) // m for a, b in oc_segments(spec, tile, og))]
    return options


def tile_fits(spec: LayerSpec, tile: Tile, hw: HardwareConfig) -> bool:
    """Whether :func:`choose_plan` finds a loop nest for ``tile`` (some channel-group size
    fits the buffers), without choosing among them: cheap (smallest groups, the likeliest
    to fit, first)."""
    oh = tile.rows(spec.out_shape[1])
    stored = weight_chunk(spec, hw)
    return any(_fit(spec, tile.w1 - tile.w0, og, hw, oh[1] - oh[0], stored) is not None
               for og in reversed(_group_sizes(spec, tile)))


def _cost_bound(spec: LayerSpec, wt: int, ct: int, oh: int, full_in: int, bpc: float,
                hw: HardwareConfig) -> Callable[[int], float] | None:
    """A lower bound of :func:`_choose_plan`'s cost of group size ``og`` that never falls
    as ``og`` shrinks (one more group loads the input again and pays its instructions),
    so the search over decreasing sizes stops once it reaches the best cost; None for the
    forms it does not cover (grouped, dilated or upsampled CONVs, global pooling,
    RESIZE)."""
    if spec.kind not in ("conv", "pool", "add") or spec.grouped or not spec.plain or (
            isinstance(spec.node, QPool) and spec.node.kind == "global_avg"):
        return None
    c = spec.in_shape[0]
    kh, kw = spec.kernel
    sh, sw = spec.stride
    # the fewest input rows any band height loads, and the columns every band loads
    rows = min(full_in, oh * kh if kh < sh else (oh - 1) * sh + kh) * ((wt - 1) * sw + kw)
    dense = spec.kind == "conv" and spec.groups == 1
    fixed = oh * wt * ct
    if spec.kind == "conv":
        fixed += ct * kh * kw * (c if dense else 1)
    if not dense:  # every group loads its own channels' input: ct channels in all
        fixed += rows * ct * (2 if spec.kind == "add" else 1)
    per_group = rows * c if dense else 0
    setup = 5 * hw.costs.load_setup_cycles  # each group: >= 5 instructions

    def bound(og: int) -> float:
        groups = -(-ct // og)
        return (fixed + groups * per_group) / bpc + groups * setup

    return bound


def _choose_plan(spec: LayerSpec, tile: Tile, hw: HardwareConfig, stored: int) -> _Plan:
    wt, ct = tile.w1 - tile.w0, tile.c1 - tile.c0
    options = _group_sizes(spec, tile)
    bpc = core_bytes_per_cycle(hw)
    c, h, _w = spec.in_shape
    kh, kw = spec.kernel
    h0, h1 = tile.rows(spec.out_shape[1])
    oh = h1 - h0
    # input rows of all bands: with padding (plain), or real input rows (upsampled)
    if spec.plain:
        full_in = h + spec.pads[0] + spec.pads[1]
        if oh < spec.out_shape[1]:
            full_in = min(full_in, (oh - 1) * spec.stride[0] + kh)
    else:
        full_in = h
        if oh < spec.out_shape[1]:
            full_in = min(full_in, _real_span((oh - 1) * spec.stride[0]
                                              + spec.kernel_extent[0], spec.ups[0]))
    best: tuple[float, _Plan] | None = None
    bound = _cost_bound(spec, wt, ct, oh, full_in, bpc, hw)
    for og in options:
        if bound is not None and best is not None and bound(og) >= best[0]:
            break  # this and every smaller group size cost at least as much
        p = _fit(spec, wt, og, hw, oh, stored)
        if p is None:
            continue
        groups = (len(oc_segments(spec, tile, og)) if spec.grouped
                  else len(range(tile.c0, tile.c1, og)))
        bands = -(-oh // p.rb)
        chunks = -(-c // p.chunk) if p.chunk else 1
        if spec.resize is not None:
            rows_in = int(spec.resize.band_rows(p.rb).sum())
        elif spec.plain:
            rows_in = min(full_in, bands * ((p.rb - 1) * spec.stride[0] + kh))
        else:
            rows_in = min(full_in, bands * _real_span((p.rb - 1) * spec.stride[0]
                                                      + spec.kernel_extent[0], spec.ups[0]))
        in_bytes = rows_in * p.in_cols * _in_ch(spec, og) * groups
        if spec.kind == "add":
            in_bytes *= 2
        w_bytes = 0
        if spec.kind == "conv":
            per_group = og * kh * kw * (spec.cig if spec.groups > 1 else c)
            w_bytes = groups * per_group * (bands if p.chunk else 1)
        out_bytes = oh * wt * ct
        insns = groups * (2 + bands * chunks * (3 if p.chunk else 2) + bands)
        cost = (in_bytes + w_bytes + out_bytes) / bpc + insns * hw.costs.load_setup_cycles
        if best is None or cost < best[0]:
            best = (cost, p)
    if best is None:
        raise TileDoesNotFit(
            f"layer {spec.index} ({spec.kind} '{spec.node.name}'): a tile of {wt} columns x "
            f"{ct} channels does not fit the core's buffers even one row at a time"
        )
    return best[1]


# ------------------------------------------------------------------------ codegen
@dataclass
class _Step:
    loads: list[Insn]
    calc: Insn
    band: int
    writes_obuf: bool
    saves: list[Insn] = field(default_factory=list)


def _box(p: Placement, w: int, r0: int, r1: int, c0: int, c1: int, k0: int, k1: int,
         ) -> dict[str, int]:
    """LOAD/SAVE box fields for rows [r0,r1), columns [c0,c1), channels [k0,k1)."""
    return dict(ddr=p.offset + (r0 * w + c0) * p.c_stride + k0, n0=r1 - r0, n1=c1 - c0,
                n2=k1 - k0, stride0=w * p.c_stride, stride1=p.c_stride)


#: Largest box dimension of a LOAD/SAVE word (``n0``/``n1`` are 16-bit).
_MAX_DIM = 0xFFFF


def _saves(p: Placement, w: int, r0: int, r1: int, c0: int, c1: int, k0: int, k1: int,
           buf: int) -> list[Insn]:
    """The SAVEs writing the dense obuf array ``[r1-r0][c1-c0][k1-k0]`` at ``buf`` to rows
    [r0,r1), columns [c0,c1), channels [k0,k1) of ``p``.

    Normally one box. For a tensor stored shuffled (:attr:`Placement.shuffle`) the channels
    ``[k0,k1)`` lie in one shuffle block and go to positions ``pos(k0) + g * t``: the box
    then runs over pixels (stride ``c_stride``) and channels (stride ``g``) one byte each,
    one SAVE for the whole band when it spans the full width, else one per row."""
    if not p.shuffle:
        return [(Opcode.SAVE, {"from": Buffer.OBUF, "buf": buf,
                               **_box(p, w, r0, r1, c0, c1, k0, k1)})]
    g = p.shuffle
    m = p.shuffle_c // g
    assert k0 // m == (k1 - 1) // m, "a channel chunk straddles shuffle blocks"
    og, wt = k1 - k0, c1 - c0
    pos = p.channel_pos(k0)
    if wt == w and (r1 - r0) * w <= _MAX_DIM:
        rows = [(r0, r1, (r1 - r0) * w)]
    else:
        rows = [(r, r + 1, wt) for r in range(r0, r1)]
    out: list[Insn] = []
    for a, _b, npix in rows:
        out.append((Opcode.SAVE, {
            "from": Buffer.OBUF, "buf": buf + (a - r0) * wt * og,
            "ddr": p.offset + (a * w + c0) * p.c_stride + pos, "n0": npix, "n1": og, "n2": 1,
            "stride0": p.c_stride, "stride1": g}))
    return out


def _tokens(group_loads: list[Insn], steps: list[_Step]) -> list[Insn]:
    """Set the dependency bits of one group (see module docstring) and order it."""
    def add(ins: Insn, bits: int) -> None:
        ins[1]["deps"] = ins[1].get("deps", 0) | bits

    n = len(steps)
    bands = sorted({s.band for s in steps})
    nb = len(bands)
    first_load = group_loads[0] if group_loads else steps[0].loads[0]
    add(first_load, Dep.WAIT_NEXT)
    out: list[Insn] = list(group_loads)
    for s, st in enumerate(steps):
        if s >= 2:
            add(st.loads[0], Dep.WAIT_NEXT)
        add(st.loads[-1], Dep.SIGNAL_NEXT)
        add(st.calc, Dep.WAIT_PREV)
        if st.writes_obuf:
            b = bands.index(st.band)
            if b == 0 or b >= 2:
                add(st.calc, Dep.WAIT_NEXT)
            add(st.calc, Dep.SIGNAL_NEXT)
            assert st.saves
            add(st.saves[0], Dep.WAIT_PREV)
            if b + 2 < nb or b == nb - 1:
                add(st.saves[-1], Dep.SIGNAL_PREV)
        if s + 2 < n or s == n - 1:
            add(st.calc, Dep.SIGNAL_PREV)
        out.extend(st.loads)
        out.append(st.calc)
        out.extend(st.saves)
    return out


def _bands(h0: int, h1: int, rb: int) -> list[tuple[int, int]]:
    """Output rows ``[h0, h1)`` in bands of ``rb`` rows."""
    return [(r, min(r + rb, h1)) for r in range(h0, h1, rb)]


def conv_ifp(spec: LayerSpec, tile: Tile, hw: HardwareConfig,
             plan: LoopNest | None = None) -> IfpCode:
    """The IFP computing ``tile`` of convolution layer ``spec``."""
    node = spec.node
    assert isinstance(node, QConv)
    p = plan if plan is not None else choose_plan(spec, tile, hw)
    ci, h, w = spec.in_shape
    co, oh, ow = spec.out_shape
    kh, kw = spec.kernel
    ekh, ekw = spec.kernel_extent
    sh, sw = spec.stride
    uh, uw = spec.ups
    pt, _pb, pl, _pr = spec.pads
    cig, opg = spec.cig, spec.opg
    x, y = spec.ins[0], spec.out
    wt = tile.w1 - tile.w0
    col_lo, col_hi, pad_l, pad_r = _in_range(tile.w0, tile.w1, ekw, sw, pl, w, uw)
    # ISA v3 fields only where used (ISA v2 layers keep their bytes); with dilation or
    # upsampling the CONV pads (after zero insertion) and the LOAD copies the input
    # elements only: ibuf holds no padding (an 8x8 map under a dilation-18 window: 64
    # input pixels, not 44x44 padded ones)
    upsampled = not spec.plain
    extra: dict[str, int | float] = {}
    if spec.dil != (1, 1):
        extra |= dict(dil_h=spec.dil[0], dil_w=spec.dil[1])
    if spec.ups != (1, 1):
        extra |= dict(ups_h=uh, ups_w=uw)
    if node.fsum_in_scale is not None:  # ISA v5: onnxruntime's float32 ConvTranspose sums
        extra |= dict(fsum=1, in_scale=node.fsum_in_scale)
    half_i, half_o, half_w = hw.buffers["ibuf"] // 2, hw.buffers["obuf"] // 2, hw.buffers[
        "wbuf"] // 2
    act = _ACT[node.act.kind]
    stored = weight_chunk(spec, hw)
    if stored and p.chunk != stored:
        raise CompileError(
            f"layer {spec.index} ('{node.name}'): its weights are stored in chunks of "
            f"{stored} input channels (docs/binary-format.md, DATA); a loop nest with chunk "
            f"{p.chunk} cannot read them: use chunk = {stored}")
    insns: list[Insn] = []
    use = {"ibuf": 0, "wbuf": 0, "pbuf": 0, "obuf": 0, "abuf": 0}
    for g0, g1 in oc_segments(spec, tile, p.og):
        og = g1 - g0
        conv_groups = 1
        if spec.groups == 1:
            ic_lo, ic_hi = 0, ci
        elif spec.depthwise:
            ic_lo, ic_hi = g0, g1
            conv_groups = og
        elif og % opg == 0 and g0 % opg == 0:
            ic_lo, ic_hi = (g0 // opg) * cig, (g1 // opg) * cig
            conv_groups = og // opg
        else:  # a slice of one conv group: a dense conv over that group's inputs
            ic_lo = (g0 // opg) * cig
            ic_hi = ic_lo + cig
        wrow = kh * kw * cig
        chunks = ([(ic_lo, ic_hi)] if not p.chunk
                  else [(a, min(a + p.chunk, ic_hi)) for a in range(ic_lo, ic_hi, p.chunk)])
        group_loads: list[Insn] = [(Opcode.LOAD, dict(
            to=Buffer.PBUF, buf=0, ddr=spec.p_off + g0 * PARAM_RECORD_BYTES, n0=1, n1=1,
            n2=og * PARAM_RECORD_BYTES, stride0=0, stride1=0))]
        use["pbuf"] = max(use["pbuf"], og * PARAM_RECORD_BYTES)
        if act is Act.TABLE:  # the table after this group's records (docs/isa.md)
            group_loads.append((Opcode.LOAD, dict(
                to=Buffer.PBUF, buf=og * PARAM_RECORD_BYTES,
                ddr=spec.p_off + spec.out_shape[0] * PARAM_RECORD_BYTES, n0=1, n1=1,
                n2=ACT_TABLE_BYTES, stride0=0, stride1=0)))
            use["pbuf"] = max(use["pbuf"], og * PARAM_RECORD_BYTES + ACT_TABLE_BYTES)
        if not p.chunk:
            group_loads.append((Opcode.LOAD, dict(
                to=Buffer.WBUF, buf=0, ddr=spec.w_off + g0 * wrow, n0=1, n1=1, n2=og * wrow,
                stride0=0, stride1=0)))
            use["wbuf"] = max(use["wbuf"], og * wrow)
        steps: list[_Step] = []
        s = 0
        for b, (r0, r1) in enumerate(_bands(*tile.rows(oh), p.rb)):
            row_lo, row_hi, pad_t, pad_b = _in_range(r0, r1, ekh, sh, pt, h, uh)
            if row_hi <= row_lo or col_hi <= col_lo:
                raise CompileError(
                    f"layer {spec.index} ('{node.name}'): output rows [{r0}, {r1}) x columns "
                    f"[{tile.w0}, {tile.w1}) read no input element (a kernel shorter than the "
                    "upsampling factor)")
            if upsampled:
                in_rows, in_cols = row_hi - row_lo, col_hi - col_lo
                load_pads = dict(pad_t=0, pad_b=0, pad_l=0, pad_r=0)
                extra |= dict(pad_t=pad_t, pad_b=pad_b, pad_l=pad_l, pad_r=pad_r)
            else:
                in_rows = row_hi - row_lo + pad_t + pad_b
                in_cols = col_hi - col_lo + pad_l + pad_r
                load_pads = dict(pad_t=pad_t, pad_b=pad_b, pad_l=pad_l, pad_r=pad_r)
            for k, (a, e) in enumerate(chunks):
                slot = s % 2
                final = k == len(chunks) - 1
                loads: list[Insn] = []
                w_addr = 0
                if stored:  # one contiguous box: the group's rows of stored chunk a
                    w_addr = slot * half_w
                    loads.append((Opcode.LOAD, dict(
                        to=Buffer.WBUF, buf=w_addr,
                        ddr=spec.w_off + chunk_weight_offset(a, e - a, g0, co, kh * kw),
                        n0=1, n1=1, n2=og * kh * kw * (e - a), stride0=0, stride1=0)))
                    use["wbuf"] = max(use["wbuf"], w_addr + og * kh * kw * (e - a))
                elif p.chunk:
                    w_addr = slot * half_w
                    loads.append((Opcode.LOAD, dict(
                        to=Buffer.WBUF, buf=w_addr, ddr=spec.w_off + g0 * wrow + a, n0=og,
                        n1=kh * kw, n2=e - a, stride0=wrow, stride1=cig)))
                    use["wbuf"] = max(use["wbuf"], w_addr + og * kh * kw * (e - a))
                box = _box(x, w, row_lo, row_hi, col_lo, col_hi, a, e)
                loads.append((Opcode.LOAD, dict(
                    to=Buffer.IBUF, buf=slot * half_i, **load_pads, pad_value=spec.in_zp[0],
                    **box)))
                use["ibuf"] = max(use["ibuf"], slot * half_i + in_rows * in_cols * (e - a))
                n_out = (r1 - r0) * wt * og
                out_addr = (b % 2) * half_o if final else 0
                calc = (Opcode.CONV, dict(
                    in_addr=slot * half_i, w_addr=w_addr, out_addr=out_addr, p_addr=0,
                    acc_addr=0, in_h=in_rows, in_w=in_cols, in_c=e - a, out_c=og,
                    groups=conv_groups, kh=kh, kw=kw, stride_h=sh, stride_w=sw,
                    pad_value=spec.in_zp[0], out_zp=node.act.stage_zp(spec.out_zp), act=act,
                    act_lo=node.act.lo, act_hi=node.act.hi, acc_in=int(k > 0),
                    acc_out=int(not final), **extra))
                if final:
                    use["obuf"] = max(use["obuf"], out_addr + n_out)
                else:
                    use["abuf"] = max(use["abuf"], 4 * n_out)
                st = _Step(loads, calc, b, final)
                if final:
                    st.saves = _saves(y, ow, r0, r1, tile.w0, tile.w1, g0, g1, out_addr)
                steps.append(st)
                s += 1
        insns.extend(_tokens(group_loads, steps))
    return IfpCode(spec.index, tile, tile.rows(oh), insns, use)


#: What one band of a one-input layer computes, given the output rows ``[r0, r1)``, the
#: channels ``[g0, g1)`` and its ibuf / obuf addresses: the input rows and columns to
#: load (``row_lo, row_hi, col_lo, col_hi``) and the CALC instruction.
_BandCalc = Callable[[int, int, int, int, int, int], tuple[tuple[int, int, int, int], Insn]]


def _one_input_ifp(spec: LayerSpec, tile: Tile, hw: HardwareConfig, p: LoopNest,
                   band: _BandCalc) -> IfpCode:
    """The IFP of a layer with one input map (POOL, RESIZE): per channel group of
    ``p.og`` and band of ``p.rb`` output rows, one LOAD of the band's input box into an
    ibuf slot, the CALC instruction ``band`` gives, and its SAVEs, double-buffered."""
    w = spec.in_shape[2]
    oh, ow = spec.out_shape[1], spec.out_shape[2]
    x, y = spec.ins[0], spec.out
    wt = tile.w1 - tile.w0
    half_i, half_o = hw.buffers["ibuf"] // 2, hw.buffers["obuf"] // 2
    insns: list[Insn] = []
    use = {"ibuf": 0, "wbuf": 0, "pbuf": 0, "obuf": 0, "abuf": 0}
    for g0 in range(tile.c0, tile.c1, p.og):
        g1 = min(g0 + p.og, tile.c1)
        og = g1 - g0
        steps: list[_Step] = []
        for b, (r0, r1) in enumerate(_bands(*tile.rows(oh), p.rb)):
            slot = b % 2
            (row_lo, row_hi, col_lo, col_hi), calc = band(r0, r1, g0, g1, slot * half_i,
                                                          slot * half_o)
            load = (Opcode.LOAD, dict(to=Buffer.IBUF, buf=slot * half_i,
                                      **_box(x, w, row_lo, row_hi, col_lo, col_hi, g0, g1)))
            use["ibuf"] = max(use["ibuf"],
                              slot * half_i + (row_hi - row_lo) * (col_hi - col_lo) * og)
            use["obuf"] = max(use["obuf"], slot * half_o + (r1 - r0) * wt * og)
            save = _saves(y, ow, r0, r1, tile.w0, tile.w1, g0, g1, slot * half_o)
            steps.append(_Step([load], calc, b, True, save))
        insns.extend(_tokens([], steps))
    return IfpCode(spec.index, tile, tile.rows(oh), insns, use)


def pool_ifp(spec: LayerSpec, tile: Tile, hw: HardwareConfig,
             plan: LoopNest | None = None) -> IfpCode:
    """The IFP computing ``tile`` of pooling layer ``spec`` (padding handled by POOL)."""
    node = spec.node
    assert isinstance(node, QPool)
    p = plan if plan is not None else choose_plan(spec, tile, hw)
    _ci, h, w = spec.in_shape
    kh, kw = spec.kernel
    sh, sw = spec.stride
    pt, _pb, pl, _pr = spec.pads
    mode = pool_mode(node)
    glob = mode is PoolMode.GLOBAL_AVG

    def band(r0: int, r1: int, g0: int, g1: int, in_addr: int,
             out_addr: int) -> tuple[tuple[int, int, int, int], Insn]:
        if glob:
            row_lo, row_hi, pad_t, pad_b = 0, h, 0, 0
            col_lo, col_hi, pad_l, pad_r = 0, w, 0, 0
        else:
            row_lo, row_hi, pad_t, pad_b = _in_range(r0, r1, kh, sh, pt, h)
            col_lo, col_hi, pad_l, pad_r = _in_range(tile.w0, tile.w1, kw, sw, pl, w)
        calc = (Opcode.POOL, dict(
            mode=mode, in_addr=in_addr, out_addr=out_addr, in_h=row_hi - row_lo,
            in_w=col_hi - col_lo, c=g1 - g0, kh=0 if glob else kh, kw=0 if glob else kw,
            stride_h=0 if glob else sh, stride_w=0 if glob else sw, pad_t=pad_t,
            pad_b=pad_b, pad_l=pad_l, pad_r=pad_r, **spec.calc_fields))
        return (row_lo, row_hi, col_lo, col_hi), calc

    return _one_input_ifp(spec, tile, hw, p, band)


def resize_ifp(spec: LayerSpec, tile: Tile, hw: HardwareConfig,
               plan: LoopNest | None = None) -> IfpCode:
    """The IFP computing ``tile`` of bilinear resize layer ``spec``: per channel group and
    band of output rows, a LOAD of exactly the input rows and columns the band's outputs
    read (no padding: source coordinates are clamped into the map), one RESIZE naming
    where the tiles lie in the maps, a SAVE."""
    geo = spec.resize
    assert isinstance(spec.node, QResize) and geo is not None
    p = plan if plan is not None else choose_plan(spec, tile, hw)
    col_lo, col_hi = geo.in_cols(tile.w0, tile.w1)

    def band(r0: int, r1: int, g0: int, g1: int, in_addr: int,
             out_addr: int) -> tuple[tuple[int, int, int, int], Insn]:
        row_lo, row_hi = geo.in_rows(r0, r1)
        calc = (Opcode.RESIZE, dict(
            in_addr=in_addr, out_addr=out_addr, in_h=row_hi - row_lo, in_w=col_hi - col_lo,
            c=g1 - g0, out_h=r1 - r0, out_w=tile.w1 - tile.w0, in_y0=row_lo, in_x0=col_lo,
            out_y0=r0, out_x0=tile.w0, **spec.calc_fields))
        return (row_lo, row_hi, col_lo, col_hi), calc

    return _one_input_ifp(spec, tile, hw, p, band)


def resize_params(geo: ResizeGeometry, x: QTensor, y: QTensor) -> dict[str, float | int]:
    """The fields of a RESIZE word that every tile of the layer shares: the coordinate
    transformation, the float32 scales, the maps' sizes and the input and output
    quantization (docs/isa.md, RESIZE)."""
    f32 = np.float32
    return dict(coord=int(geo.mode), scale_h=float(f32(geo.scales[0])),
                scale_w=float(f32(geo.scales[1])), in_scale=float(f32(x.scale)),
                out_scale=float(f32(y.scale)), in_zp=x.zero_point, out_zp=y.zero_point,
                map_in_h=geo.in_hw[0], map_in_w=geo.in_hw[1], map_out_h=geo.out_hw[0],
                map_out_w=geo.out_hw[1])


def pool_mode(node: QPool) -> PoolMode:
    """The POOL mode of a pooling node."""
    return {"max": PoolMode.MAX, "global_avg": PoolMode.GLOBAL_AVG}.get(
        node.kind, PoolMode.AVG_PAD if node.count_include_pad else PoolMode.AVG)


def pool_params(mode: PoolMode, x: QTensor, y: QTensor, count: int) -> dict[str, float | int]:
    """The requantization fields of a POOL word (ISA v2) from the input and output
    tensors: none for MAX; the two scales for AVG/AVG_PAD; for GLOBAL_AVG ``scale =
    f32(s_in / f32(s_out * f32(count)))`` (ONNX Runtime's ``QLinearGlobalAveragePool``),
    ``count = H * W``."""
    if mode is PoolMode.MAX:
        return dict(scale=0.0, out_scale=0.0, in_zp=0, out_zp=0)
    f32 = np.float32
    s_in, s_out = f32(x.scale), f32(y.scale)
    zps = dict(in_zp=x.zero_point, out_zp=y.zero_point)
    if mode is PoolMode.GLOBAL_AVG:
        return dict(scale=float(s_in / f32(s_out * f32(count))), out_scale=0.0, **zps)
    return dict(scale=float(s_in), out_scale=float(s_out), **zps)


def eltwise_params(node: QAdd, a_zp: int, b_zp: int, out_zp: int) -> dict[str, float | int]:
    """The operation and arithmetic fields of an ELTWISE word (ISA v3): ``scale_a``/
    ``scale_b`` the float32 values the graph's ``mult / 2**shift`` pairs stand for; for
    add the constant ``offset`` folding the three zero points
    (:func:`vfpga.isa.float32.eltwise_offset`), for mul the zero points and in
    ``scale_a`` the one ratio ``f32(f32(s_a * s_b) / divisor)``
    (:func:`vfpga.isa.float32.mul_ratio`), for sub the zero points and ``out_scale``, the
    node's divisor."""
    sa = requant_scale(node.mult_a, node.shift)
    sb = requant_scale(node.mult_b, node.shift)
    if node.op == "add":
        return dict(op=EltOp.ADD, scale_a=sa, scale_b=sb,
                    offset=eltwise_offset(sa, sb, a_zp, b_zp, out_zp))
    if node.op == "mul":
        return dict(op=EltOp.MUL, scale_a=mul_ratio(sa, sb, node.divisor), a_zp=a_zp,
                    b_zp=b_zp, out_zp=out_zp)
    return dict(op=EltOp.SUB, scale_a=sa, scale_b=sb, a_zp=a_zp, b_zp=b_zp, out_zp=out_zp,
                out_scale=float(np.float32(node.divisor)))


def add_ifp(spec: LayerSpec, tile: Tile, hw: HardwareConfig,
            plan: LoopNest | None = None) -> IfpCode:
    """The IFP computing ``tile`` of element-wise add layer ``spec``."""
    node = spec.node
    assert isinstance(node, QAdd)
    p = plan if plan is not None else choose_plan(spec, tile, hw)
    _co, oh, ow = spec.out_shape
    a, bb = spec.ins
    y = spec.out
    wt = tile.w1 - tile.w0
    half_i, half_o = hw.buffers["ibuf"] // 2, hw.buffers["obuf"] // 2
    insns: list[Insn] = []
    use = {"ibuf": 0, "wbuf": 0, "pbuf": 0, "obuf": 0, "abuf": 0}
    for g0 in range(tile.c0, tile.c1, p.og):
        g1 = min(g0 + p.og, tile.c1)
        steps: list[_Step] = []
        for b, (r0, r1) in enumerate(_bands(*tile.rows(oh), p.rb)):
            slot = b % 2
            n = (r1 - r0) * wt * (g1 - g0)
            la = (Opcode.LOAD, dict(to=Buffer.IBUF, buf=slot * half_i,
                                    **_box(a, ow, r0, r1, tile.w0, tile.w1, g0, g1)))
            if spec.bcast:  # per-channel B: its g1 - g0 values, repeated by b_period
                lb = (Opcode.LOAD, dict(to=Buffer.IBUF, buf=slot * half_i + n,
                                        **_box(bb, 1, 0, 1, 0, 1, g0, g1)))
                b_len = g1 - g0
            else:
                lb = (Opcode.LOAD, dict(to=Buffer.IBUF, buf=slot * half_i + n,
                                        **_box(bb, ow, r0, r1, tile.w0, tile.w1, g0, g1)))
                b_len = n
            use["ibuf"] = max(use["ibuf"], slot * half_i + n + b_len)
            calc = (Opcode.ELTWISE, dict(
                a_addr=slot * half_i, b_addr=slot * half_i + n, out_addr=slot * half_o, n=n,
                **spec.calc_fields, act=_ACT[node.act.kind], act_lo=node.act.lo,
                act_hi=node.act.hi, b_period=b_len if spec.bcast else 0))
            use["obuf"] = max(use["obuf"], slot * half_o + n)
            save = _saves(y, ow, r0, r1, tile.w0, tile.w1, g0, g1, slot * half_o)
            steps.append(_Step([la, lb], calc, b, True, save))
        insns.extend(_tokens([], steps))
    return IfpCode(spec.index, tile, tile.rows(oh), insns, use)


def shape_key(spec: LayerSpec, tile: Tile, plan: LoopNest) -> tuple[int, ...]:
    """Tiles of layer ``spec`` with equal keys (and loop nest ``plan``) get instruction
    streams that differ only in the ``ddr`` fields of their LOADs and SAVEs, each an
    affine function of the tile's origin ``(w0, c0, h0)``.

    Why: code generation branches only on the tile's width and channel count, the loop
    nest and the input columns' border padding (``pad_l``/``pad_r`` of the (dilated)
    kernel over the (upsampled) input, which also fix where the clipped input column
    range starts and how many input columns it holds); every DDR address is the tensor's
    offset plus ``(row * W + column) * c_stride + channel`` (or the weight/parameter
    offset plus a multiple of the first channel) with the column and channel moving
    with the origin. Two exceptions are keyed in: a grouped convolution's channel
    segments and input-channel range depend on ``c0`` modulo the group size (and are
    affine over shifts that keep it), and a shuffled output's channel positions are
    not affine in ``c0`` (its tiles are keyed by ``c0`` itself). Rows are like columns:
    the tile's row count, input rows and their border padding are keyed (with ``h0``
    modulo the upsampling), and addresses move affinely with ``h0``."""
    ekw, sw, pl, uw = spec.kernel_extent[1], spec.stride[1], spec.pads[2], spec.ups[1]
    _lo, _hi, pad_l, pad_r = _in_range(tile.w0, tile.w1, ekw, sw, pl, spec.in_shape[2], uw)
    h0, h1 = tile.rows(spec.out_shape[1])
    ekh, sh, uh = spec.kernel_extent[0], spec.stride[0], spec.ups[0]
    lo, hi, pad_t, pad_b = _in_range(h0, h1, ekh, sh, spec.pads[0], spec.in_shape[1], uh)
    unit = spec.opg if spec.grouped else 1
    c_key = tile.c0 if spec.out.shuffle else tile.c0 % unit
    if spec.resize is not None:  # RESIZE words name the tile's place in the maps
        return (tile.w0, tile.w1, tile.c0, tile.c1, h0, h1, plan.og, plan.rb)
    return (tile.w1 - tile.w0, tile.c1 - tile.c0, pad_l, pad_r, c_key, plan.og, plan.rb,
            plan.chunk, plan.in_cols, h1 - h0, hi - lo, pad_t, pad_b, h0 % uh)


def make_ifp(spec: LayerSpec, tile: Tile, hw: HardwareConfig,
             plan: LoopNest | None = None) -> IfpCode:
    """The IFP of ``tile`` of any accelerator layer, with loop nest ``plan`` (default: the
    one :func:`choose_plan` picks; pass the nest it returned earlier to skip the search)."""
    gen = {"conv": conv_ifp, "pool": pool_ifp, "add": add_ifp, "resize": resize_ifp}[spec.kind]
    return gen(spec, tile, hw, plan)
