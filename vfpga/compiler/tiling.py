"""Candidate tilings of a layer (the ``dnn-tile`` pass's engine).

A tile is a box of the layer's output: a row range ``[h0, h1)``, a column range
``[w0, w1)`` and an output-channel range ``[c0, c1)`` (aligned to the hardware's
output-channel parallelism, or to whole groups for grouped convolutions). Input
channels are never split (no cross-core partial sums; see docs/compiler.md). A
candidate is a set of tiles that covers the output exactly once; it is kept only if
every tile fits the core's buffers (:func:`vfpga.compiler.ifpgen.choose_plan` finds a
loop nest).

The candidates serve the dynamic pass, which runs a layer on any number ``k`` of cores by
picking a candidate and assigning its tiles to the cores (docs/dynamic.md). For every
``k = 1 .. min(num_cores, MAX_PARTS)`` the engine builds the **balanced partition into
k tiles**: the tiling into exactly ``k`` tiles whose longest tile (by the estimated IFP
latency, :func:`vfpga.compiler.tilecost.tile_cycles`) is least. It searches guillotine
partitions: the output is cut along one axis (rows, columns or channels) into ``s``
strips, strip ``i`` holds ``n_i`` tiles (``n_i`` is ``k // s`` or ``k // s + 1``, larger
strips first), its extent along the cut axis proportional to ``n_i``, and it is split
along a second axis into ``n_i`` near-equal parts (``s`` in 1-4, ``k`` and ``k / 2``,
``k / 3``, ``k / 4`` rounded up). ``s = 1`` is a plain one-axis split; the others are
two-dimensional tilings, which let core counts such as 9, 11, 13 or 15 use every core
where no one-axis split divides the layer evenly. Width ranges are searched with bounds
on multiples of one column and of the pixel parallelism (a tile whose width is a
multiple of it wastes no PE columns). A second family has strips of two kinds (``a``
strips of ``n_a`` tiles each and one strip of the remaining tiles, the strips' extents
chosen near ``n / k`` of the layer), which balances layers whose extent along the cut
axis is not a multiple of the strip count. Within each family the partitions are ranked
by their largest tile counted in PE cells (a row x ``pixel_parallel`` columns x
``out_channel_parallel`` channels); the :data:`SHORTLIST` best of each family are
estimated in cycles, and so is every one-axis split (PE cells ignore the weights a tile
reloads, which favour channel splits of weight-heavy layers). Equal partitions found for
several ``k`` are kept once.

A layer whose balanced partition into ``k`` tiles is longer than :data:`BISECT_SLACK`
times the layer's estimated bound (the least ``max(total / k, longest)`` over its
partitions, as the dynamic pass's ``mk/LB``) is searched again by recursive bisection
(:func:`_refine`, :class:`_Bisection`: cut in two, each half cut independently), which
the guillotine families cannot express: every layer whose tiles
:func:`~vfpga.compiler.tilecost.tile_cycles` estimates in closed form, and every layer of
one output pixel.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

import numpy as np

from vfpga.compiler.assign import lpt
from vfpga.compiler.ifpgen import (
    LayerSpec,
    Tile,
    TileDoesNotFit,
    _in_range,
    choose_plan,
    pool_mode,
    tile_fits,
)
from vfpga.compiler.tilecost import cycles_lower_bound, modelled, tile_cycles, tile_work
from vfpga.frontend.qgraph import QConv, QPool
from vfpga.hw.config import HardwareConfig
from vfpga.hw.costs import core_bytes_per_cycle

#: the largest number of tiles of a balanced partition (the pool size of pool16)
MAX_PARTS = 16
#: plain one-axis splits kept besides the balanced partitions (when they fit and differ),
#: so that a pass pinning a layer to one axis (examples/pin-tiling) finds some
PLAIN_PARTS = (2, 4)


@dataclass(frozen=True)
class Candidate:
    """A tiling: ``axis`` is ``"w"`` (a split of the width into ``parts`` column ranges;
    one part = the whole layer), ``"c"`` (of the output channels) or ``"wc"`` (any
    partition into ``parts`` rectangles of width x output channels)."""

    axis: str
    parts: int
    tiles: tuple[Tile, ...]

    @property
    def label(self) -> str:
        return "whole" if len(self.tiles) == 1 else f"{self.axis}/{len(self.tiles)}"


@lru_cache(maxsize=65536)
def _split(n: int, parts: int, unit: int) -> tuple[tuple[int, int], ...] | None:
    """Split ``[0, n)`` into ``parts`` near-equal ranges whose bounds are multiples of
    ``unit`` (the last may be shorter); None if that leaves an empty range."""
    units = -(-n // unit)
    if parts > units:
        return None
    bounds = [min(n, (units * i // parts) * unit) for i in range(parts + 1)]
    ranges = tuple(itertools.pairwise(bounds))
    if any(b <= a for a, b in ranges):
        return None
    return ranges


@lru_cache(maxsize=65536)
def _prop_split(n: int, weights: tuple[int, ...], unit: int,
                ) -> tuple[tuple[int, int], ...] | None:
    """Split ``[0, n)`` into ranges proportional to ``weights`` with bounds on multiples
    of ``unit``; None if a range would be empty."""
    units = -(-n // unit)
    total = sum(weights)
    acc = 0
    bounds = [0]
    for wgt in weights:
        acc += wgt
        bounds.append(min(n, ((units * acc * 2 + total) // (2 * total)) * unit))
    ranges = tuple(itertools.pairwise(bounds))
    if any(b <= a for a, b in ranges):
        return None
    return ranges


class _Costs:
    """Estimated IFP latency of tiles of one layer, cached by what the latency depends
    on (tile rows and row geometry, width and column geometry, channel count and
    alignment), and its cheap lower bound (:func:`~vfpga.compiler.tilecost.cycles_lower_bound`)."""

    def __init__(self, spec: LayerSpec, hw: HardwareConfig) -> None:
        self.spec, self.hw = spec, hw
        self.memo: dict[tuple[int, ...], int | None] = {}
        self.low: dict[tuple[int, ...], int] = {}
        self.works: dict[tuple[int, ...], tuple[int, int, int] | None] = {}
        self.fit: dict[tuple[int, ...], bool] = {}
        self.cols: dict[tuple[int, int], tuple[int, ...]] = {}
        self.rows: dict[tuple[int, int | None], tuple[int, ...]] = {}
        self.modelled = modelled(spec)
        _c, h, w = spec.in_shape
        self.kh, self.kw = spec.kernel_extent
        self.uh, self.uw = spec.ups
        self.sh, self.sw = spec.stride
        self.pt, self.pl, self.h, self.w = spec.pads[0], spec.pads[2], h, w
        self.opg = spec.opg if spec.grouped else 1
        self.shuffle = spec.out.shuffle_c // spec.out.shuffle if spec.out.shuffle else 0

    def key(self, t: Tile) -> tuple[int, ...]:
        """What the tile's latency depends on: (width and column geometry, rows and row
        geometry, channel count and alignment), each part cached by its range."""
        cols = self.cols.get((t.w0, t.w1))
        if cols is None:
            lo, hi, pad_l, pad_r = _in_range(t.w0, t.w1, self.kw, self.sw, self.pl, self.w,
                                             self.uw)
            cols = self.cols[(t.w0, t.w1)] = (t.w1 - t.w0, hi - lo, pad_l, pad_r)
        rows = self.rows.get((t.h0, t.h1))
        if rows is None:
            h0, h1 = t.rows(self.spec.out_shape[1])
            lo, hi, pad_t, pad_b = _in_range(h0, h1, self.kh, self.sh, self.pt, self.h,
                                             self.uh)
            rows = self.rows[(t.h0, t.h1)] = (h1 - h0, hi - lo, pad_t, pad_b)
        chans = (t.c1 - t.c0, t.c0 % self.opg, t.c1 % self.opg,
                 *((t.c0 % self.shuffle, t.c1 % self.shuffle) if self.shuffle else ()))
        return cols + rows + chans

    def __call__(self, t: Tile, key: tuple[int, ...] | None = None) -> int | None:
        """The tile's estimated cycles, or None if it fits no loop nest."""
        key = key or self.key(t)
        try:
            return self.memo[key]
        except KeyError:
            pass
        try:
            v: int | None = tile_cycles(self.spec, t, self.hw)
        except TileDoesNotFit:
            v = None
        self.memo[key] = v
        return v

    def fits(self, t: Tile, key: tuple[int, ...]) -> bool:
        """Whether the tile fits some loop nest (cheaper than estimating it)."""
        v = self.fit.get(key)
        if v is None:
            if key in self.memo:
                v = self.memo[key] is not None
            elif self.modelled:
                v = tile_fits(self.spec, t, self.hw)
            else:
                v = self(t, key) is not None
            self.fit[key] = v
        return v

    def work(self, t: Tile) -> tuple[int, int, int] | None:
        """The tile's :func:`~vfpga.compiler.tilecost.tile_work` (cached by its key)."""
        key = self.key(t)
        try:
            return self.works[key]
        except KeyError:
            v = self.works[key] = tile_work(self.spec, t, self.hw)
            return v

    def lower(self, t: Tile, key: tuple[int, ...]) -> int:
        """A lower bound of the tile's estimated cycles (when it fits)."""
        try:
            return self.low[key]
        except KeyError:
            v = self.low[key] = cycles_lower_bound(self.spec, t, self.hw)
            return v


#: the output axes a tiling cuts: rows, columns, output channels
_AXES = ("h", "w", "c")
#: partitions per core count and family whose estimated latency is computed (the best by
#: PE cells)
SHORTLIST = 4


class _Layout:
    """The output of one layer as a grid of PE *cells* (a row x ``pixel_parallel``
    columns x ``out_channel_parallel`` channels: what a CONV computes per cycle and
    channel step), for ranking partitions before estimating their latency."""

    def __init__(self, spec: LayerSpec, hw: HardwareConfig) -> None:
        co, oh, ow = spec.out_shape
        self.size = {"h": oh, "w": ow, "c": co}
        self.lane = {"h": 1, "w": hw.pixel_parallel, "c": hw.out_channel_parallel}
        c_unit = max(spec.channel_unit, min(hw.out_channel_parallel, co))
        self.units = {"h": (1,), "w": tuple(sorted({1, hw.pixel_parallel})), "c": (c_unit,)}
        #: the axes a tiling may cut: not the rows of a RESIZE (its bands' loop nest is
        #: fitted to bands starting at row 0)
        self.axes = ("w", "c") if spec.kind == "resize" else _AXES
        #: what the partitions depend on
        self.key = (co, oh, ow, hw.pixel_parallel, hw.out_channel_parallel, c_unit,
                    self.axes)

    def cells(self, axis: str, a: int, b: int) -> int:
        return -(-(b - a) // self.lane[axis])


_Strips = tuple[tuple[tuple[int, int], tuple[tuple[int, int], ...]], ...]


_Memo = dict[tuple[object, ...], object]


def _inner_cells(size: int, unit: int, lane: int, k: int, memo: _Memo,
                 ) -> tuple[tuple[int, int], ...]:
    """For ``n = 0 .. k``, (largest, total) PE cells along one axis of the split of
    ``[0, size)`` into ``n`` parts (:func:`_split`); (0, 0) where there is none."""
    key = ("cells", size, unit, lane, k)
    got = memo.get(key)
    if got is None:
        out = [(0, 0)]
        for n in range(1, k + 1):
            parts = _split(size, n, unit)
            cells = [-(-(y - x) // lane) for x, y in parts] if parts else [0]
            out.append((max(cells), sum(cells)))
        got = memo[key] = tuple(out)
    return got  # type: ignore[return-value]


def _guillotine(lay: _Layout, k: int, s: int, outer: str, inner: str, u_out: int,
                u_in: int, memo: _Memo) -> tuple[_Strips, int, int] | None:
    """``k`` tiles in ``s`` strips along ``outer``, each split along ``inner`` (see the
    module docstring): (strips with their inner ranges, max cells of a tile, total
    cells), or None. The cells along the third axis only scale the counts, so the
    partition is computed once per sizes of the two axes (``memo``)."""
    third = next(a for a in _AXES if a not in (outer, inner))
    third_cells = lay.cells(third, 0, lay.size[third])
    size_o, size_i, lane_o, lane_i = lay.size[outer], lay.size[inner], lay.lane[outer], \
        lay.lane[inner]
    key = ("g", size_o, size_i, lane_o, lane_i, k, s, u_out, u_in)
    if key in memo:
        got = cast(tuple[_Strips, int, int] | None, memo[key])
    else:
        got = _guillotine_cells(size_o, size_i, lane_o, lane_i, k, s, u_out, u_in, memo)
        memo[key] = got
    if got is None:
        return None
    strips, mx, tot = got
    return strips, mx * third_cells, tot * third_cells


def _guillotine_cells(size_o: int, size_i: int, lane_o: int, lane_i: int, k: int, s: int,
                      u_out: int, u_in: int, memo: _Memo) -> tuple[_Strips, int, int] | None:
    q, r = divmod(k, s)
    if q == 0:
        return None
    counts = (q + 1,) * r + (q,) * (s - r)
    strips = _prop_split(size_o, counts, u_out)
    if strips is None:
        return None
    inner_cells = _inner_cells(size_i, u_in, lane_i, max(k, MAX_PARTS), memo)
    splits = {n: _split(size_i, n, u_in) for n in {q, q + 1} if n <= k}
    out = []
    mx = tot = 0
    for (a, b), n in zip(strips, counts, strict=True):
        parts = splits[n]
        if parts is None:
            return None
        oc = -(-(b - a) // lane_o)
        in_max, in_tot = inner_cells[n]
        if oc * in_max > mx:
            mx = oc * in_max
        tot += oc * in_tot
        out.append(((a, b), parts))
    return tuple(out), mx, tot


def _two_kinds(lay: _Layout, k: int, outer: str, inner: str, u_out: int, u_in: int,
               memo: _Memo, keep: int = 2) -> list[tuple[_Strips, int, int]]:
    """Guillotine partitions with strips of two kinds: ``a`` strips of ``u_a`` units
    holding ``n_a`` tiles each, then one strip of the remaining units holding the
    remaining ``k - a * n_a`` tiles (``u_a`` near ``units * n_a / k``), for layers whose
    units do not divide evenly. The ``keep`` best by their largest tile in PE cells
    (ties: less total, then smaller ``n_a``, ``a``, ``u_a``), as (strips, max cells,
    total cells). Computed for every ``k`` at once, once per sizes of the two axes
    (``memo``; the cells along the third axis only scale the counts)."""
    third = next(x for x in _AXES if x not in (outer, inner))
    third_cells = lay.cells(third, 0, lay.size[third])
    size_o, size_i, lane_o, lane_i = lay.size[outer], lay.size[inner], lay.lane[outer], \
        lay.lane[inner]
    kmax = max(k, MAX_PARTS)
    key = ("t", size_o, size_i, lane_o, lane_i, u_out, u_in, keep, kmax)
    got = memo.get(key)
    if got is None:
        inner_cells = _inner_cells(size_i, u_in, lane_i, kmax, memo)
        got = memo[key] = _two_kinds_cells(size_o, size_i, lane_o, kmax, u_out, u_in, keep,
                                           inner_cells, memo)
    return [(st, mx * third_cells, tot * third_cells)
            for st, mx, tot in got[k]]  # type: ignore[index]


def _two_kinds_cells(size_o: int, size_i: int, lane: int, kmax: int, u_out: int, u_in: int,
                     keep: int, inner_cells: tuple[tuple[int, int], ...], memo: _Memo,
                     ) -> list[list[tuple[_Strips, int, int]]]:
    """:func:`_two_kinds` for ``k = 0 .. kmax`` (index ``k``), in cells of the two axes."""
    grid = memo.get(("grid", kmax))
    if grid is None:  # (k, n_a, a, d) with n_b = k - a * n_a >= 1, in that order
        kk, na, a, d = (x.ravel() for x in np.meshgrid(
            np.arange(1, kmax + 1), np.arange(1, kmax), np.arange(1, kmax), np.arange(-1, 3),
            indexing="ij"))
        ok = kk - a * na >= 1
        grid = memo[("grid", kmax)] = (kk[ok], na[ok], a[ok], d[ok])
    kk, na, a, d = grid  # type: ignore[misc]
    cells = np.asarray(inner_cells, np.int64)
    in_max, in_tot = cells[:, 0], cells[:, 1]
    units = -(-size_o // u_out)
    nb = kk - a * na
    ua = units * na // kk + d
    ub = units - a * ua
    ok = (ua >= 1) & (ub >= 1) & (in_max[na] > 0) & (in_max[nb] > 0)
    kk, na, a, nb, ua, ub = kk[ok], na[ok], a[ok], nb[ok], ua[ok], ub[ok]
    co_a = -(-np.minimum(ua * u_out, size_o) // lane)
    co_b = -(-np.minimum(ub * u_out, size_o) // lane)
    mx = np.maximum(co_a * in_max[na], co_b * in_max[nb])
    tot = a * co_a * in_tot[na] + co_b * in_tot[nb]
    order = np.lexsort((tot, mx, kk))  # stable: ties keep the (n_a, a, d) order
    ks = kk[order]
    starts = np.searchsorted(ks, np.arange(kmax + 2))
    rows = np.stack([na, a, nb, ua, mx, tot])[:, order]
    out: list[list[tuple[_Strips, int, int]]] = []
    for k in range(kmax + 1):
        mine: list[tuple[_Strips, int, int]] = []
        lo = int(starts[k])
        for n_a, n_strips, n_b, u_a, m, t in rows[:, lo:min(lo + keep, int(starts[k + 1]))
                                               ].T.tolist():
            step = u_a * u_out
            bounds = [min(size_o, j * step) for j in range(n_strips + 1)] + [size_o]
            if bounds[-2] >= size_o:
                continue
            counts = [n_a] * n_strips + [n_b]
            strips = []
            for (x, y), n in zip(itertools.pairwise(bounds), counts, strict=True):
                parts = _split(size_i, n, u_in)
                assert parts is not None
                strips.append(((x, y), parts))
            mine.append((tuple(strips), m, t))
        out.append(mine)
    return out


def _tiles(strips: _Strips, outer: str,
           inner: str, lay: _Layout) -> tuple[Tile, ...]:
    tiles = []
    for o, parts in strips:
        for i in parts:
            r = {outer: o, inner: i}
            w = r.get("w", (0, lay.size["w"]))
            c = r.get("c", (0, lay.size["c"]))
            h = r.get("h", (0, lay.size["h"]))
            tiles.append(Tile(w[0], w[1], c[0], c[1], h[0], h[1]))
    return tuple(tiles)


_Entry = tuple[int, int, int, _Strips, str, str]
#: a layout's partitions into k tiles: the one-axis splits, the guillotine partitions of
#: strips of one kind, of two kinds (each family ranked by (max cells, total cells))
_Families = tuple[list[_Entry], list[_Entry], list[_Entry]]


def _families(lay: _Layout, k: int, memo: _Memo) -> _Families:
    """Every partition of ``lay`` into ``k`` tiles the search considers (module
    docstring), by family, each ranked by its largest tile in PE cells."""
    ranked: list[_Entry] = []
    mixed: list[_Entry] = []
    plain: list[_Entry] = []  # one-axis splits: all tried
    seen: set[tuple[str, str, _Strips]] = set()
    s_options = sorted({1, 2, 3, 4, k, *(-(-k // n) for n in (2, 3, 4))})
    for outer in lay.axes:
        for inner in lay.axes:
            if inner == outer:
                continue
            for s in s_options:
                if s > k:
                    continue
                for u_out in lay.units[outer]:
                    for u_in in lay.units[inner]:
                        g = _guillotine(lay, k, s, outer, inner, u_out, u_in, memo)
                        if g is None or (outer, inner, g[0]) in seen:
                            continue
                        seen.add((outer, inner, g[0]))
                        (plain if s == 1 else ranked).append(
                            (g[1], g[2], len(ranked), g[0], outer, inner))
            for u_out in lay.units[outer]:
                for u_in in lay.units[inner]:
                    for strips, mx, tot in _two_kinds(lay, k, outer, inner, u_out, u_in,
                                                      memo):
                        if (outer, inner, strips) not in seen:
                            seen.add((outer, inner, strips))
                            mixed.append((mx, tot, len(mixed), strips, outer, inner))
    for family in (plain, ranked, mixed):
        family.sort()
    return plain, ranked, mixed


class _Search:
    """Memo of one tiling search (one :func:`layer_candidates` call): the partitions of
    each layout into ``k`` tiles, and their tiles; layers of equal output shape and
    channel unit share them."""

    def __init__(self) -> None:
        self.families: dict[tuple[object, ...], _Families] = {}
        self.tiles: dict[tuple[object, ...], tuple[Tile, ...]] = {}
        self.canon: dict[tuple[Tile, ...], tuple[Tile, ...]] = {}
        self.cells: _Memo = {}

    def partitions(self, lay: _Layout, k: int) -> _Families:
        key = (lay.key, k)
        got = self.families.get(key)
        if got is None:
            got = self.families[key] = _families(lay, k, self.cells)
        return got

    def tiles_of(self, lay: _Layout, k: int, family: int, i: int, e: _Entry,
                 ) -> tuple[Tile, ...]:
        """The tiles of entry ``i`` of ``family`` of ``lay``'s partitions into ``k`` tiles
        (equal tilings are the same object)."""
        key = (lay.key, k, family, i)
        got = self.tiles.get(key)
        if got is None:
            got = _tiles(e[3], e[4], e[5], lay)
            got = self.tiles[key] = self.canon.setdefault(got, got)
        return got


def balanced_partition(spec: LayerSpec, hw: HardwareConfig, k: int,
                       costs: _Costs | None = None, search: _Search | None = None,
                       ) -> tuple[Tile, ...] | None:
    """The partition of ``spec``'s output into ``k`` tiles that fit the buffers with the
    least estimated longest tile (ties: least estimated total, then the first considered),
    or None if there is none. Considered are every one-axis split and, of each family of
    guillotine partitions, the :data:`SHORTLIST` best that fit, ranked by their largest
    tile in PE cells. They are estimated in the order of their lower bound (the largest
    :func:`~vfpga.compiler.tilecost.cycles_lower_bound` of their tiles); one whose bound
    exceeds the best longest tile found so far cannot win and is not estimated."""
    lay = _Layout(spec, hw)
    cost = costs or _Costs(spec, hw)
    search = search or _Search()
    done: set[int] = set()  # ids of the canonical tilings seen
    considered: list[tuple[int, int, tuple[Tile, ...], list[tuple[int, ...]],
                           dict[tuple[int, ...], Tile], dict[tuple[int, ...], int]]] = []
    for f, (family, limit) in enumerate(zip(search.partitions(lay, k),
                                            (None, SHORTLIST, SHORTLIST), strict=True)):
        tried = 0
        for i, e in enumerate(family):
            if limit is not None and tried >= limit:
                break
            tiles = search.tiles_of(lay, k, f, i, e)
            if id(tiles) in done:
                continue
            done.add(id(tiles))
            tk = [cost.key(t) for t in tiles]
            keys = dict(zip(tk, tiles, strict=True))
            if not all(cost.fits(t, q) for q, t in keys.items()):
                continue
            tried += 1
            lows = {q: cost.lower(t, q) for q, t in keys.items()}
            considered.append((max(lows.values()), len(considered), tiles, tk, keys, lows))
    best: tuple[int, int, int] | None = None
    found: tuple[Tile, ...] | None = None
    for low, order, tiles, tk, keys, lows in sorted(considered, key=lambda x: (x[0], x[1])):
        if best is not None and low > best[0]:
            break
        # estimate the tiles likeliest to be the longest first; once one exceeds the best
        # longest tile, this partition cannot win and its other tiles are not estimated
        got: dict[tuple[int, ...], int] = {}
        for q in sorted(keys, key=lows.__getitem__, reverse=True):
            v = got[q] = cost(keys[q], q) or 0  # (they fit)
            if best is not None and v > best[0]:
                break
        else:
            vals = [got[q] for q in tk]
            key = (max(vals), sum(vals), order)
            if best is None or key < best:
                best, found = key, tiles
    return found


#: cuts tried for the first cut of a wide bisection (:meth:`_Bisection.best`, ``wide``)
WIDE_BREADTH = 12

#: a ``k``-tile balanced partition whose estimated longest tile exceeds this factor times
#: the layer's estimated bound (:func:`_refine`) is searched again by recursive bisection
BISECT_SLACK = 1.02

#: the cuts of a box a bisection of a plain CONV of a kernel larger than 1x1, a POOL or
#: an ELTWISE add searches (those of least lower bound): their search trees are the
#: largest, and the best cut is nearly always among the first three (Inception v3: mean
#: ``mk/LB`` at k = 15 1.037 with every cut, 1.038 with three, for half the CPU); the other
#: refined layers (depthwise, 1x1, one output pixel) search every cut
BISECT_BREADTH = 3

_Box = tuple[int, int, int, int, int, int]  # h0, h1, w0, w1, c0, c1


class _Bisection:
    """Recursive bisection of one layer's output (memo shared by every ``k``): a box is
    cut along rows, columns (multiples of the pixel parallelism) or output channels (the
    channel unit) into two boxes holding ``n // 2`` and ``n - n // 2`` of its ``n`` tiles
    (either way round), each cut where the parts' extents are proportional to their tile
    counts; the best is the one of least estimated longest tile. Unlike the guillotine
    families of :func:`_families` the two halves are cut independently, which balances
    layers (small depthwise and 1x1 CONVs) whose every one- or two-level partition leaves
    one tile a unit larger than the rest. Channels are cut at any channel (of the layer's
    channel unit), not at the ``out_channel_parallel`` of the other searches: a layer of
    one output pixel (a fully connected layer, a global pooling) has only its channels to
    balance and its tiles are bound by loading weights or inputs, which a partial PE lane
    does not slow; a depthwise CONV's tiles are bound by their input loads, so a tile of
    35 channels loads 35/32 of a 32-channel tile's bytes (its CALC takes one more lane
    step); a dense 1x1 CONV pays a partial lane where its tiles are computed, but balances
    better than at 8 channels (the estimate decides, tile by tile)."""

    def __init__(self, lay: _Layout, cost: _Costs) -> None:
        self.lay, self.cost = lay, cost
        self.memo: dict[tuple[int, ...], tuple[float, tuple[Tile, ...]]] = {}
        #: :func:`~vfpga.compiler.tilecost.tile_work` of each box searched
        self.work: dict[_Box, tuple[int, int, int] | None] = {}
        c_unit = lay.units["c"][0]
        if _bisected(cost.spec) and cost.spec.channel_unit == 1:
            c_unit = 1
        self.unit = {"h": 1, "w": lay.lane["w"], "c": c_unit}
        #: a dense 1x1 CONV is not cut along rows: its row tiles of a few rows load the
        #: weights again and run in more steps (MobileNet v1's 1024x7x7 layer: a 15-tile
        #: bisection of 2-3 row tiles, chosen on 16 cores too, ran 97 more instructions
        #: for 2 % of that layer's latency, and the emulator took 4 % longer)
        spec = cost.spec
        one = (spec.kind == "conv" and not spec.depthwise and spec.kernel == (1, 1)
               and lay.size["h"] * lay.size["w"] > 1)
        self.axes = tuple(a for a in lay.axes if a != "h") if one else lay.axes
        self.breadth = 2 * len(self.axes) if _exhaustive(spec) else BISECT_BREADTH
        self.ax = {"h": 0, "w": 2, "c": 4}
        c = cost.hw.costs
        self.setup = c.load_setup_cycles + c.calc_setup_cycles + c.save_setup_cycles
        self.bpc = core_bytes_per_cycle(cost.hw)

    def _low(self, box: _Box, n: int) -> float:
        """A lower bound of the longest of ``n`` tiles sharing ``box``
        (:func:`~vfpga.compiler.tilecost.cycles_lower_bound` with ``parts = n``)."""
        try:
            work = self.work[box]
        except KeyError:
            h0, h1, w0, w1, c0, c1 = box
            work = self.work[box] = self.cost.work(Tile(w0, w1, c0, c1, h0, h1))
        if work is None:
            return 0
        load, calc, save = work  # (work_bound, inlined: this runs for every cut tried)
        bpc = self.bpc * n
        return self.setup + max(math.ceil(load / bpc), -(-calc // n), math.ceil(save / bpc))

    def best(self, box: _Box, n: int, cap: float = math.inf, low: float | None = None,
             wide: bool = False) -> tuple[float, tuple[Tile, ...]]:
        """(estimated longest tile, tiles) of the best bisection of ``box`` into ``n``
        tiles (``inf``, () if none fits); a result not below ``cap`` may be any value
        not below it (branch and bound: a cut whose halves' lower bounds reach the best
        found so far is not searched). ``low``: ``_low(box, n)`` if known. ``wide``: the
        first cut splits the tiles ``n1 : n - n1`` for every ``n1`` (not only in halves)
        and tries the :data:`WIDE_BREADTH` such cuts of least lower bound; the boxes it
        makes are bisected as usual."""
        key = (*box, n, 1) if wide else (*box, n)
        got = self.memo.get(key)
        if got is not None and (got[1] or got[0] >= cap):
            return got
        h0, h1, w0, w1, c0, c1 = box
        if low is None:
            low = self._low(box, n)
        if low >= cap:
            return low, ()
        if n == 1:
            t = Tile(w0, w1, c0, c1, h0, h1)
            cycles = self.cost(t)
            got = self.memo[key] = (math.inf, ()) if cycles is None else (float(cycles), (t,))
            return got
        res: tuple[float, tuple[Tile, ...]] = (math.inf, ())
        bound = cap
        cuts: list[tuple[float, int, _Box, int, _Box, float, float]] = []
        for axis in self.axes:
            i, unit = self.ax[axis], self.unit[axis]
            a, b = box[i], box[i + 1]
            units = -(-(b - a) // unit)
            for n1 in range(1, n) if wide else sorted({n // 2, n - n // 2}):
                cut = a + ((units * n1 * 2 + n) // (2 * n)) * unit
                if not a < cut < b:
                    continue
                left = list(box)
                right = list(box)
                left[i + 1] = right[i] = cut
                lbox, rbox = cast(_Box, tuple(left)), cast(_Box, tuple(right))
                llo, rlo = self._low(lbox, n1), self._low(rbox, n - n1)
                lo = max(llo, rlo)
                if lo < bound:
                    cuts.append((lo, len(cuts), lbox, n1, rbox, llo, rlo))
        breadth = WIDE_BREADTH if wide else self.breadth
        if breadth < len(cuts):  # the cuts of least lower bound
            cuts = sorted(cuts)[:breadth]
        for lo, _i, lbox, n1, rbox, llo, rlo in cuts:
            if lo >= bound:
                continue
            lv = self.best(lbox, n1, bound, llo)
            if lv[0] >= bound:
                continue
            rv = self.best(rbox, n - n1, bound, rlo)
            v = max(lv[0], rv[0])
            if v < bound:
                bound, res = v, (v, lv[1] + rv[1])
        if res[1] or cap == math.inf:
            self.memo[key] = res
        elif got is None or got[0] < bound:
            self.memo[key] = (bound, ())
        return res if res[1] else (bound, ())


def _bisected(spec: LayerSpec) -> bool:
    """Whether :func:`_refine` searches ``spec``'s partitions again by recursive bisection:
    every layer whose tiles :func:`~vfpga.compiler.tilecost.tile_cycles` estimates in
    closed form (plain CONVs, POOLs, ELTWISE adds of equal shapes; the bisection estimates
    many tiles, which the other forms would generate and simulate), and a layer of one
    output pixel."""
    return (modelled(spec) and not spec.grouped) or spec.depthwise or \
        spec.out_shape[1] * spec.out_shape[2] == 1


def _exhaustive(spec: LayerSpec) -> bool:
    """Whether :func:`_refine` searches ``spec`` as session 10 did (every cut, every ``k``
    whose ``k``-tile partition is far from the bound): a depthwise CONV, a dense 1x1
    CONV, a layer of one output pixel. The other layers' search is cheaper (their
    trees are larger): :data:`BISECT_BREADTH` cuts per box, and only a ``k`` on which no
    partition kept finishes within :data:`BISECT_SLACK` of the bound."""
    return (spec.depthwise or spec.out_shape[1] * spec.out_shape[2] == 1
            or (spec.kind == "conv" and spec.groups == 1 and spec.kernel == (1, 1)
                and spec.plain))


def _refine(spec: LayerSpec, found: dict[int, tuple[Tile, ...]], costs: _Costs,
            hw: HardwareConfig) -> dict[int, tuple[Tile, ...]]:
    """Replace a balanced partition that is far from the layer's bound by a recursive
    bisection (:class:`_Bisection`) when that finishes the layer sooner. For each ``k``
    (increasing) the layer's best makespan on ``k`` cores is the least LPT makespan
    (:func:`~vfpga.compiler.assign.lpt`) of the partitions kept so far, and its bound the
    least of their ``max(total / k, longest)`` (estimated), as the dynamic pass's layer
    bound (docs/dynamic.md); only a ``k`` whose best makespan exceeds the bound by more
    than :data:`BISECT_SLACK` is searched again, for a bisection into ``k`` tiles whose
    longest tile is shorter than that makespan (which then replaces the ``k``-tile
    partition).

    The layers of :func:`_bisected` are refined: depthwise CONVs and dense 1x1 CONVs,
    where the guillotine families fall furthest short (MobileNet v1 up to 1.22x its bound
    at k = 14, from load-bound tiles whose row and column cuts reload halos, and channel
    splits in 8-channel steps), and the other plain CONVs, POOLs and ELTWISE adds
    (Inception v3's mean ``mk/LB`` at k = 10 1.029 -> 1.015, estimated; docs/dynamic.md,
    session 11).

    For those other layers, a ``k`` whose bisection in halves still leaves the layer
    more than :data:`BISECT_SLACK` over its bound is bisected once more with a *wide*
    first cut (``n1 : k - n1`` tiles for every ``n1``, the :data:`WIDE_BREADTH` cuts of
    least lower bound; :meth:`_Bisection.best`). A 3x3 CONV of 128 channels on a 17x17
    map on 13 cores, for example, is best cut 1 : 12: one tile for its first row, twelve
    for the other 16 rows; its longest tile is 7 % shorter than the halving bisection's
    (Inception v3's worst ``mk/LB``, k = 15: 1.038 -> 1.030)."""
    if not _bisected(spec) or not found:
        return found
    est = {k: [costs(t) or 0 for t in tiles] for k, tiles in found.items()}
    bis: _Bisection | None = None
    out = dict(found)
    co, oh, ow = spec.out_shape
    exhaustive = _exhaustive(spec)
    for k in sorted(found):
        if k == 1:
            continue
        vals = [(sum(v), max(v), v) for v in est.values()]
        bound = min(max(tot / k, mx) for tot, mx, _v in vals)
        mk = max(est[k])  # the k-tile partition on k cores
        if mk <= BISECT_SLACK * bound:
            continue
        if not exhaustive:  # the least makespan of any partition kept (LPT)
            for tot, mx, v in vals:
                if len(v) <= k:
                    mk = min(mk, mx)
                elif max(tot / k, mx) < mk:
                    mk = min(mk, lpt(v, k)[1])
            if mk <= BISECT_SLACK * bound:
                continue
        bis = bis or _Bisection(_Layout(spec, hw), costs)
        full = (0, oh, 0, ow, 0, co)
        val, tiles = bis.best(full, k, float(mk))
        if tiles and val < mk:
            out[k] = tiles
            est[k] = [costs(t) or 0 for t in tiles]
            mk = int(val)
        if not exhaustive and mk > BISECT_SLACK * bound:  # still far: first cuts n1 : k - n1
            val, tiles = bis.best(full, k, float(mk), wide=True)
            if tiles and val < mk:
                out[k] = tiles
                est[k] = [costs(t) or 0 for t in tiles]
    return out


def _axis(tiles: tuple[Tile, ...], spec: LayerSpec) -> str:
    co, oh, ow = spec.out_shape
    full_h = all(t.rows(oh) == (0, oh) for t in tiles)
    if full_h and all(t.c0 == 0 and t.c1 == co for t in tiles):
        return "w"
    if full_h and all(t.w0 == 0 and t.w1 == ow for t in tiles):
        return "c"
    return "tiles"


def candidates(spec: LayerSpec, hw: HardwareConfig, max_parts: int = MAX_PARTS,
               search: _Search | None = None) -> list[Candidate]:
    """The candidate tilings of ``spec``: the balanced partition into ``k`` tiles for
    every ``k = 1 .. min(hw.num_cores, max_parts)`` that has one, in increasing ``k``,
    then the plain width and channel splits into :data:`PLAIN_PARTS` parts not among them
    (at least one candidate: if even the whole layer fits no loop nest, the width is split
    as finely as needed)."""
    co, oh, ow = spec.out_shape
    costs = _Costs(spec, hw)
    search = search or _Search()
    out: list[Candidate] = []
    seen: set[tuple[Tile, ...]] = set()
    found: dict[int, tuple[Tile, ...]] = {}
    for k in range(1, max(1, min(hw.num_cores, max_parts)) + 1):
        tiles = balanced_partition(spec, hw, k, costs, search)
        if tiles is not None:
            found[k] = tiles
    for k, tiles in _refine(spec, found, costs, hw).items():
        if tiles in seen:
            continue
        seen.add(tiles)
        out.append(Candidate(_axis(tiles, spec), k, tiles))
    c_unit = max(spec.channel_unit, min(hw.out_channel_parallel, co))
    for axis in ("w", "c"):
        for k in PLAIN_PARTS:
            if k > hw.num_cores:
                continue
            r = _split(ow, k, 1) if axis == "w" else _split(co, k, c_unit)
            if r is None:
                continue
            tiles = tuple(Tile(a, b, 0, co, 0, oh) if axis == "w" else Tile(0, ow, a, b, 0, oh)
                          for a, b in r)
            if tiles in seen or not all(costs.fits(t, costs.key(t)) for t in tiles):
                continue
            seen.add(tiles)
            out.append(Candidate(axis, k, tiles))
    if not out:  # the whole width does not fit: split width until it does
        for k in range(2, ow + 1):
            r = _split(ow, k, 1)
            if r is None:
                continue
            tiles = tuple(Tile(a, b, 0, co) for a, b in r)
            try:
                for t in tiles:
                    choose_plan(spec, t, hw)
            except TileDoesNotFit:
                continue
            out.append(Candidate("w", k, tiles))
            break
    if not out:
        raise TileDoesNotFit(
            f"layer {spec.index} ('{spec.node.name}'): no tiling fits the core's buffers "
            f"(output {co}x{oh}x{ow})"
        )
    return out


def shape_signature(spec: LayerSpec) -> tuple[object, ...]:
    """Everything :func:`candidates` reads from ``spec``: two layers of equal signatures
    (on the same hardware) have the same candidates. For the forms
    :func:`~vfpga.compiler.tilecost.tile_cycles` models that is the layer's geometry (kind,
    shapes, kernel, stride, padding, groups), its activation (a TABLE loads its table) or
    pooling mode, and how its output is stored (shuffled or not); a form it does not model
    (estimated by generating the tile's instructions) is its own signature."""
    node = spec.node
    if not modelled(spec):
        return ("layer", spec.index)
    mode = (node.act.kind == "table" if isinstance(node, QConv)
            else pool_mode(node) if isinstance(node, QPool) else None)
    return (spec.kind, type(node).__name__, mode, spec.in_shape, spec.out_shape, spec.kernel,
            spec.stride, spec.pads, spec.groups, spec.dil, spec.ups, spec.bcast,
            spec.out.shuffle, spec.out.shuffle_c)


def layer_candidates(specs: list[LayerSpec], hw: HardwareConfig,
                     max_parts: int = MAX_PARTS) -> list[list[Candidate]]:
    """:func:`candidates` of every layer of ``specs``, computed once per
    :func:`shape_signature` (ResNet-50: 72 layers, 30 signatures). Raises
    :class:`~vfpga.compiler.ifpgen.TileDoesNotFit` naming the first layer that has
    none."""
    memo: dict[tuple[object, ...], list[Candidate]] = {}
    search = _Search()
    out: list[list[Candidate]] = []
    for spec in specs:
        key = shape_signature(spec)
        cands = memo.get(key)
        if cands is None:
            cands = memo[key] = candidates(spec, hw, max_parts, search)
        out.append(cands)
    return out
