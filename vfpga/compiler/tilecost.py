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

__all__ = ["tile_cycles"]

#: one step of an IFP: (LOAD cycles, CALC cycles, SAVE cycles, band, writes obuf)
_Step = tuple[int, int, int, int, bool]


def tile_cycles(spec: LayerSpec, tile: Tile, hw: HardwareConfig) -> int:
    """Estimated latency in cycles of the IFP computing ``tile`` of ``spec`` on one core
    (close to ``simulate(make_ifp(spec, tile, hw).insns, hw)``). Raises
    :class:`~vfpga.compiler.ifpgen.TileDoesNotFit` if the tile fits no loop nest."""
    if spec.kind == "conv" and isinstance(spec.node, QConv) and spec.plain:
        groups = _conv_steps(spec, tile, hw)
    elif spec.kind == "pool" and isinstance(spec.node, QPool):
        groups = _pool_steps(spec, tile, hw)
    elif spec.kind == "add" and not spec.bcast:
        groups = _add_steps(spec, tile, hw)
    else:  # a form this estimate does not model (dilated or upsampled CONV, ELTWISE with a
        # per-channel operand): the exact latency
        return simulate(make_ifp(spec, tile, hw).insns, hw)
    return _flow(groups)


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
        out.append((gl, steps))
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
    for g0 in range(tile.c0, tile.c1, p.og):
        og = min(g0 + p.og, tile.c1) - g0
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
        out.append((0, steps))
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
