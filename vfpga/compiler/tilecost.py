"""A fast estimate of the latency of one tile's IFP, for choosing tilings.

:func:`vfpga.compiler.latency.simulate` predicts an IFP's latency exactly, from its
instructions; generating them and simulating costs ~0.2 ms per tile. The tiling search
(:mod:`vfpga.compiler.tiling`) weighs hundreds of tile shapes per layer, so it uses
:func:`tile_cycles` instead: the same loop nest (:func:`~vfpga.compiler.ifpgen.choose_plan`:
channel groups, row bands, input-channel chunks), the same per-instruction costs
(:mod:`vfpga.hw.costs`) and the same token protocol (double-buffered ibuf / obuf slots,
one CALC->LOAD and one SAVE->CALC credit handed from group to group; docs/compiler.md),
computed per *step* (a band's loads, its CALC and its SAVEs) in closed form rather than
per instruction. It is an estimate: the chosen candidates' IFPs are still generated and
simulated exactly (``ifp-estimate-latency``), and the dynamic pass only ever reads those
exact latencies. Layer forms it does not model (other kinds, dilated or upsampled
CONVs, ELTWISE with a per-channel operand) are estimated by generating and simulating the
tile.
"""

from __future__ import annotations

import math

from vfpga.compiler.ifpgen import (
    LayerSpec,
    Tile,
    _bands,
    _in_range,
    choose_plan,
    make_ifp,
    oc_segments,
    pool_mode,
)
from vfpga.compiler.latency import simulate
from vfpga.frontend.qgraph import QConv, QPool
from vfpga.hw.config import HardwareConfig
from vfpga.hw.costs import compute_cycles, core_bytes_per_cycle
from vfpga.isa.spec import ACT_TABLE_BYTES, PARAM_RECORD_BYTES, Opcode, PoolMode

__all__ = ["cycles_lower_bound", "modelled", "tile_cycles", "tile_work", "work_bound"]

#: one step of an IFP: (LOAD cycles, CALC cycles, SAVE cycles, band, writes obuf)
_Step = tuple[int, int, int, int, bool]


def modelled(spec: LayerSpec) -> bool:
    """Whether :func:`tile_cycles` computes ``spec``'s tiles in closed form (a plain CONV,
    a POOL, an ELTWISE of two equal-shaped operands); other forms (dilated or upsampled
    CONVs, ELTWISE with a per-channel operand, other kinds) are generated and simulated."""
    if spec.kind == "conv":
        return isinstance(spec.node, QConv) and spec.plain
    if spec.kind == "pool":
        return isinstance(spec.node, QPool)
    return spec.kind == "add" and not spec.bcast


def tile_cycles(spec: LayerSpec, tile: Tile, hw: HardwareConfig) -> int:
    """Estimated latency in cycles of the IFP computing ``tile`` of ``spec`` on one core
    (close to ``simulate(make_ifp(spec, tile, hw).insns, hw)``). Raises
    :class:`~vfpga.compiler.ifpgen.TileDoesNotFit` if the tile fits no loop nest."""
    if not modelled(spec):  # the exact latency
        return simulate(make_ifp(spec, tile, hw).insns, hw)
    if spec.kind == "conv":
        groups = _conv_steps(spec, tile, hw)
    elif spec.kind == "pool":
        groups = _pool_steps(spec, tile, hw)
    else:
        groups = _add_steps(spec, tile, hw)
    return _flow(groups)


def cycles_lower_bound(spec: LayerSpec, tile: Tile, hw: HardwareConfig, parts: int = 1) -> int:
    """A lower bound of :func:`tile_cycles` for any loop nest of ``tile`` (no more than
    its result when the tile fits), from the work no loop nest avoids: the PE cycles of
    the whole tile (bands, channel groups and chunks only add partial lanes), each input
    pixel a window reads, each weight and parameter record loaded once (input columns:
    the tile's whole span, as every band loads them), each output byte saved once; the
    three modules run side by side, so the IFP takes at least the busiest one's time.
    With ``parts`` > 1, a lower bound of the longest of ``parts`` tiles that partition
    ``tile``: they share its work (partial lanes, halos and reloads only add), so one of
    them does at least ``1 / parts`` of each module's work, after that module's setup.
    Cheap (no loop nest is chosen); 0 for the forms :func:`tile_cycles` does not model
    and for grouped (not depthwise) CONVs."""
    work = tile_work(spec, tile, hw)
    return 0 if work is None else work_bound(work, parts, hw)


def work_bound(work: tuple[int, int, int], parts: int, hw: HardwareConfig) -> int:
    """:func:`cycles_lower_bound` of ``parts`` tiles sharing the :func:`tile_work`
    ``work``."""
    c = hw.costs
    bpc = core_bytes_per_cycle(hw) * parts
    load, calc, out_bytes = work
    return c.load_setup_cycles + c.calc_setup_cycles + c.save_setup_cycles + max(
        math.ceil(load / bpc), -(-calc // parts), math.ceil(out_bytes / bpc))


def tile_work(spec: LayerSpec, tile: Tile, hw: HardwareConfig) -> tuple[int, int, int] | None:
    """The work no loop nest of ``tile`` avoids (:func:`cycles_lower_bound`): (bytes
    loaded, PE cycles, bytes saved), or None for the forms it does not bound."""
    if not modelled(spec) or spec.grouped:
        return None
    pp, ip, opar = hw.pixel_parallel, hw.in_channel_parallel, hw.out_channel_parallel
    ci, h, w = spec.in_shape
    h0, h1 = tile.rows(spec.out_shape[1])
    rows, wt, ct = h1 - h0, tile.w1 - tile.w0, tile.c1 - tile.c0
    out_bytes = rows * wt * ct
    pix = rows * -(-wt // pp)
    if spec.kind == "add":
        load, calc = 2 * out_bytes, -(-out_bytes // (pp * opar))
    else:
        kh, kw = spec.kernel
        sh, sw = spec.stride
        pt, pb, pl, _pr = spec.pads
        row_lo, row_hi, _t, _b = _in_range(h0, h1, kh, sh, pt, h)
        col_lo, col_hi, _l, _r = _in_range(tile.w0, tile.w1, kw, sw, pl, w)
        # rows between the windows of a stride larger than the kernel are never loaded
        in_rows = min(row_hi - row_lo, max(0, rows * kh - pt - pb))
        pixels = in_rows * (col_hi - col_lo)
        taps = kh * kw
        if spec.kind == "pool":
            assert isinstance(spec.node, QPool)
            load = pixels * ct
            if pool_mode(spec.node) is PoolMode.GLOBAL_AVG:
                calc = -(-ct // opar) * -(-(h * w) // (pp * ip))
            else:
                calc = pix * -(-ct // opar) * -(-taps // ip)
        elif spec.depthwise:
            load = pixels * ct + ct * (taps + PARAM_RECORD_BYTES)
            calc = pix * -(-ct // opar) * -(-taps // ip)
        elif ci == 1:  # a CONV word of one input and one output channel computes as a
            # depthwise one (taps on the input lanes)
            load = pixels + ct * (taps + PARAM_RECORD_BYTES)
            calc = pix * -(-ct // opar) * -(-taps // ip)
        else:
            load = pixels * ci + ct * (taps * ci + PARAM_RECORD_BYTES)
            calc = pix * -(-ct // opar) * -(-ci // ip) * taps
    return load, calc, out_bytes


def _io(n: int, setup: int, bpc: float) -> int:
    return setup + math.ceil(n / bpc)


def _save_cycles(spec: LayerSpec, rows: int, wt: int, og: int, hw: HardwareConfig,
                 bpc: float) -> int:
    """SAVE cycles of one band (several words for a row-wise shuffled store)."""
    setup = hw.costs.save_setup_cycles
    p = spec.out
    n = rows * wt * og
    if p.shuffle and not (wt == spec.out_shape[2] and rows * wt <= 0xFFFF):
        return rows * setup + math.ceil(n / bpc) * 1
    return _io(n, setup, bpc)


def _conv_steps(spec: LayerSpec, tile: Tile, hw: HardwareConfig) -> list[tuple[int, list[_Step]]]:
    node = spec.node
    assert isinstance(node, QConv)
    p = choose_plan(spec, tile, hw)
    bpc = core_bytes_per_cycle(hw)
    c = hw.costs
    ci, h, w = spec.in_shape
    oh = spec.out_shape[1]
    kh, kw = spec.kernel
    sh, sw = spec.stride
    pt, _pb, pl, _pr = spec.pads
    cig, opg = spec.cig, spec.opg
    wt = tile.w1 - tile.w0
    col_lo, col_hi, pad_l, pad_r = _in_range(tile.w0, tile.w1, kw, sw, pl, w)
    in_cols = col_hi - col_lo + pad_l + pad_r
    wrow = kh * kw * cig
    bands = _bands(*tile.rows(oh), p.rb)
    rows = [_in_range(r0, r1, kh, sh, pt, h) for r0, r1 in bands]
    out: list[tuple[int, list[_Step]]] = []
    memo: dict[tuple[int, int, int], tuple[int, list[_Step]]] = {}
    for g0, g1 in oc_segments(spec, tile, p.og):
        og = g1 - g0
        conv_groups = 1
        if spec.groups == 1:
            ic = ci
        elif spec.depthwise:
            ic, conv_groups = og, og
        elif og % opg == 0 and g0 % opg == 0:
            ic, conv_groups = (og // opg) * cig, og // opg
        else:
            ic = cig
        same = memo.get((og, ic, conv_groups))
        if same is not None:  # groups of equal size and input run equal steps
            out.append(same)
            continue
        chunks = [ic] if not p.chunk else [min(p.chunk, ic - a) for a in range(0, ic, p.chunk)]
        gl = _io(og * PARAM_RECORD_BYTES, c.load_setup_cycles, bpc)
        if node.act.kind == "table":
            gl += _io(ACT_TABLE_BYTES, c.load_setup_cycles, bpc)
        if not p.chunk:
            gl += _io(og * wrow, c.load_setup_cycles, bpc)
        steps: list[_Step] = []
        for b, ((r0, r1), (row_lo, row_hi, pad_t, pad_b)) in enumerate(
                zip(bands, rows, strict=True)):
            in_rows = row_hi - row_lo + pad_t + pad_b
            for j, e in enumerate(chunks):
                final = j == len(chunks) - 1
                ld = _io((row_hi - row_lo) * (col_hi - col_lo) * e, c.load_setup_cycles, bpc)
                if p.chunk:
                    ld += _io(og * kh * kw * e, c.load_setup_cycles, bpc)
                calc = c.calc_setup_cycles + compute_cycles(Opcode.CONV, dict(
                    in_h=in_rows, in_w=in_cols, in_c=e, out_c=og, groups=conv_groups, kh=kh,
                    kw=kw, stride_h=sh, stride_w=sw), hw)
                sv = _save_cycles(spec, r1 - r0, wt, og, hw, bpc) if final else 0
                steps.append((ld, calc, sv, b, final))
        out.append(memo.setdefault((og, ic, conv_groups), (gl, steps)))
    return out


def _pool_steps(spec: LayerSpec, tile: Tile, hw: HardwareConfig) -> list[tuple[int, list[_Step]]]:
    node = spec.node
    assert isinstance(node, QPool)
    p = choose_plan(spec, tile, hw)
    bpc = core_bytes_per_cycle(hw)
    c = hw.costs
    _ci, h, w = spec.in_shape
    oh = spec.out_shape[1]
    kh, kw = spec.kernel
    sh, sw = spec.stride
    pt, _pb, pl, _pr = spec.pads
    wt = tile.w1 - tile.w0
    glob = pool_mode(node) is PoolMode.GLOBAL_AVG
    out: list[tuple[int, list[_Step]]] = []
    memo: dict[int, tuple[int, list[_Step]]] = {}
    for g0 in range(tile.c0, tile.c1, p.og):
        og = min(g0 + p.og, tile.c1) - g0
        if og in memo:  # groups of equal size run equal steps
            out.append(memo[og])
            continue
        steps: list[_Step] = []
        for b, (r0, r1) in enumerate(_bands(*tile.rows(oh), p.rb)):
            if glob:
                in_rows, in_cols, f = h, w, dict(mode=PoolMode.GLOBAL_AVG, in_h=h, in_w=w, c=og)
            else:
                row_lo, row_hi, pad_t, pad_b = _in_range(r0, r1, kh, sh, pt, h)
                col_lo, col_hi, pad_l, pad_r = _in_range(tile.w0, tile.w1, kw, sw, pl, w)
                in_rows, in_cols = row_hi - row_lo, col_hi - col_lo
                f = dict(mode=pool_mode(node), in_h=in_rows, in_w=in_cols, c=og, kh=kh, kw=kw,
                         stride_h=sh, stride_w=sw, pad_t=pad_t, pad_b=pad_b, pad_l=pad_l,
                         pad_r=pad_r)
            ld = _io(in_rows * in_cols * og, c.load_setup_cycles, bpc)
            calc = c.calc_setup_cycles + compute_cycles(Opcode.POOL, f, hw)
            sv = _save_cycles(spec, r1 - r0, wt, og, hw, bpc)
            steps.append((ld, calc, sv, b, True))
        out.append(memo.setdefault(og, (0, steps)))
    return out


def _add_steps(spec: LayerSpec, tile: Tile, hw: HardwareConfig) -> list[tuple[int, list[_Step]]]:
    p = choose_plan(spec, tile, hw)
    bpc = core_bytes_per_cycle(hw)
    c = hw.costs
    oh = spec.out_shape[1]
    wt = tile.w1 - tile.w0
    out: list[tuple[int, list[_Step]]] = []
    for g0 in range(tile.c0, tile.c1, p.og):
        og = min(g0 + p.og, tile.c1) - g0
        steps: list[_Step] = []
        for b, (r0, r1) in enumerate(_bands(*tile.rows(oh), p.rb)):
            n = (r1 - r0) * wt * og
            ld = 2 * _io(n, c.load_setup_cycles, bpc)
            calc = c.calc_setup_cycles + compute_cycles(Opcode.ELTWISE, dict(n=n), hw)
            steps.append((ld, calc, _save_cycles(spec, r1 - r0, wt, og, hw, bpc), b, True))
        out.append((0, steps))
    return out


def _flow(groups: list[tuple[int, list[_Step]]]) -> int:
    """Makespan of the groups' steps through the LOAD, CALC and SAVE queues under the
    token protocol of :func:`vfpga.compiler.ifpgen._tokens`: step ``s`` loads into ibuf
    slot ``s % 2`` once CALC ``s - 2`` is done; a CALC waits for its loads, and one that
    writes obuf band ``b`` for the SAVE of band ``b - 2``; a group's first LOAD and first
    obuf CALC wait for the previous group's last CALC and last SAVE (the credits)."""
    t_load = t_calc = t_save = 0
    credit_load = credit_calc = 0
    for gl, steps in groups:
        t_load = max(t_load, credit_load) + gl
        calc_end: list[int] = []
        save_end: dict[int, int] = {}
        last_band = -1
        for s, (ld, calc, sv, b, writes) in enumerate(steps):
            start = t_load if s < 2 else max(t_load, calc_end[s - 2])
            t_load = start + ld
            cs = max(t_calc, t_load)
            if writes:
                if b == 0:
                    cs = max(cs, credit_calc)
                elif b >= 2:
                    cs = max(cs, save_end[b - 2])
            t_calc = cs + calc
            calc_end.append(t_calc)
            if writes:
                t_save = max(t_save, t_calc) + sv
                save_end[b] = t_save
                last_band = b
        if calc_end:
            credit_load = calc_end[-1]
            credit_calc = save_end.get(last_band, credit_calc)
    return max(t_load, t_calc, t_save)
