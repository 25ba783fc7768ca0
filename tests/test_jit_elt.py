"""The compiled kernels of ``vfpga.emulator.jit_elt`` (the squeeze-excite gate's
per-channel ELTWISE, the global average pool, a column block's table activation) compute
exactly what the numpy code of ``vfpga.emulator.kernels`` computes, on random and
edge-case operands (ties, overflow to inf, underflow, the zero-point extremes); their
numpy fallbacks too."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vfpga.emulator import jit_elt, kernels
from vfpga.isa.spec import EltOp, PoolMode

#: scales that make ties (x.5), overflow to inf, underflow to 0, and ordinary values
_SCALES = [0.5, 0.25, 1.5, 1e-3, 3.0517578125e-05, 1e30, 1e-42, -0.5, -7.25e-4, 0.0]


@pytest.fixture(params=[True, False], ids=["compiled", "numpy"])
def compiled(request, monkeypatch: pytest.MonkeyPatch) -> bool:  # type: ignore[no-untyped-def]
    if request.param:
        if jit_elt._kernels() is None:
            # numba is a declared dependency, so this never skips in CI; where numba cannot
            # compile (an unsupported platform) the emulator runs the numpy path, which the
            # "numpy" parameter of this fixture still tests
            pytest.skip("numba cannot compile the element-wise kernels on this platform; "
                        "the emulator uses its numpy path, tested by the 'numpy' case")
    else:
        monkeypatch.setattr(jit_elt, "_kernels", lambda: None)
    return bool(request.param)


def _fields(op: int, rng: np.random.Generator) -> dict[str, object]:
    sa = float(rng.choice(_SCALES[:-1]))
    if op == EltOp.ADD:
        return dict(
            op=op,
            scale_a=sa,
            scale_b=float(rng.choice(_SCALES)),
            offset=float(rng.integers(-300, 300)) + 0.5,
            act=0,
        )
    if op == EltOp.MUL:
        return dict(
            op=op,
            scale_a=sa,
            a_zp=int(rng.integers(-128, 128)),
            b_zp=int(rng.integers(-128, 128)),
            out_zp=int(rng.integers(-128, 128)),
            act=0,
        )
    return dict(
        op=op,
        scale_a=sa,
        scale_b=float(rng.choice(_SCALES)),
        a_zp=int(rng.integers(-128, 128)),
        b_zp=int(rng.integers(-128, 128)),
        out_zp=int(rng.integers(-128, 128)),
        out_scale=float(rng.choice(_SCALES[:-1])),
        act=0,
    )


def _gavg(**over: object) -> dict[str, object]:
    """:func:`kernels.pool` keywords of a global average pool (``over`` replaced)."""
    kw: dict[str, object] = dict(
        mode=PoolMode.GLOBAL_AVG,
        kernel=(0, 0),
        stride=(0, 0),
        pads=(0, 0, 0, 0),
        scale=0.5,
        out_scale=0.0,
        in_zp=0,
        out_zp=0,
    )
    kw.update(over)
    return kw


@settings(max_examples=40, deadline=None)
@given(
    op=st.sampled_from([int(o) for o in EltOp]),
    p=st.integers(1, 300),
    rows=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_lookup_period_equals_eltwise(op: int, p: int, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    f = _fields(op, rng)
    a = rng.integers(-128, 128, rows * p, dtype=np.int8)
    b = rng.integers(-128, 128, p, dtype=np.int8)
    a[0], a[-1] = -128, 127
    with np.errstate(over="ignore", under="ignore"):
        want = kernels.eltwise(a, b, b_period=p, **f)  # type: ignore[arg-type]
        table = kernels.eltwise_table(**f)
    for use in (True, False):
        out = np.zeros_like(a)
        saved = jit_elt._state.copy()
        try:
            if not use:
                jit_elt._state["k"] = None
            jit_elt.lookup_period(table, a, b, out)
        finally:
            jit_elt._state.clear()
            jit_elt._state.update(saved)
        np.testing.assert_array_equal(out, want)


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 30),
    w=st.integers(1, 30),
    c=st.integers(1, 70),
    izp=st.integers(-128, 127),
    ozp=st.integers(-128, 127),
    scale=st.sampled_from(_SCALES) | st.floats(-1e3, 1e3, width=32),
    fill=st.sampled_from([None, -128, 127]),
    seed=st.integers(0, 2**32 - 1),
)
def test_global_avg_equals_pool(
    h: int, w: int, c: int, izp: int, ozp: int, scale: float, fill: int | None, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x = (
        rng.integers(-128, 128, (h, w, c), dtype=np.int8)
        if fill is None
        else np.full((h, w, c), fill, np.int8)
    )
    with np.errstate(over="ignore", under="ignore"):
        want = kernels.pool(
            x, mode=PoolMode.GLOBAL_AVG, scale=scale, in_zp=izp, out_zp=ozp
        ).reshape(-1)
    f = _gavg(scale=scale, in_zp=izp, out_zp=ozp)
    got_fields = jit_elt.global_avg_fields(f)
    assert got_fields is not None
    for use in (True, False):
        out = np.zeros(c, np.int8)
        saved = jit_elt._state.copy()
        try:
            if not use:
                jit_elt._state["k"] = None
            with np.errstate(over="ignore", under="ignore"):
                jit_elt.global_avg(x, *got_fields, out, np.empty(c, np.int64))
        finally:
            jit_elt._state.clear()
            jit_elt._state.update(saved)
        np.testing.assert_array_equal(out, want)


def test_global_avg_ties_round_half_to_even(compiled: bool) -> None:
    """sum * 0.5 of odd sums are x.5 exactly: rounded to the even neighbour."""
    x = np.arange(-7, 8, dtype=np.int8).reshape(1, 15, 1).repeat(3, axis=2)
    x[0, :, 1] = 1
    x[0, :, 2] = -3
    want = kernels.pool(x, mode=PoolMode.GLOBAL_AVG, scale=0.5 / 3, in_zp=0, out_zp=0)
    out = np.zeros(3, np.int8)
    jit_elt.global_avg(x, 0, np.float32(0.5 / 3), 0, out, np.empty(3, np.int64))
    np.testing.assert_array_equal(out, want.reshape(-1))


@pytest.mark.parametrize(
    "bad",
    [
        dict(mode=PoolMode.AVG),
        dict(kernel=(1, 0)),
        dict(out_scale=1.0),
        dict(scale=float("inf")),
        dict(in_zp=300),
    ],
)
def test_global_avg_fields_rejects_what_pool_rejects(bad: dict[str, object]) -> None:
    """Invalid static fields: no compiled step (the general step reports the fault)."""
    f = _gavg(scale=0.5, in_zp=0, out_zp=0)
    f.update(bad)
    assert jit_elt.global_avg_fields(f) is None


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    c=st.integers(1, 20),
    k=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    pads=st.tuples(*[st.integers(0, 3)] * 4),
    fill=st.sampled_from([None, -128, 127]),
    seed=st.integers(0, 2**32 - 1),
)
def test_max_pool_equals_pool(
    h: int,
    w: int,
    c: int,
    k: tuple[int, int],
    s: tuple[int, int],
    pads: tuple[int, int, int, int],
    fill: int | None,
    seed: int,
) -> None:
    """Every geometry the pool accepts (padding up to and beyond the kernel), else no
    compiled step."""
    rng = np.random.default_rng(seed)
    x = (
        rng.integers(-128, 128, (h, w, c), dtype=np.int8)
        if fill is None
        else np.full((h, w, c), fill, np.int8)
    )
    kw = _gavg(mode=PoolMode.MAX, kernel=k, stride=s, pads=pads, scale=0.0)
    try:
        want = kernels.pool(x, **kw)  # type: ignore[arg-type]
    except ValueError:
        assert jit_elt.max_pool_fields(kw, x.shape) is None
        return
    mx = jit_elt.max_pool_fields(kw, x.shape)
    assert mx is not None
    for use in (True, False):
        out = np.zeros(want.size, np.int8)
        saved = jit_elt._state.copy()
        try:
            if not use:
                jit_elt._state["k"] = None
            jit_elt.max_pool(x, *mx, out)
        finally:
            jit_elt._state.clear()
            jit_elt._state.update(saved)
        np.testing.assert_array_equal(out, want.reshape(-1))


def test_act_table_cols_equals_apply_act_table(compiled: bool) -> None:
    rng = np.random.default_rng(3)
    table = rng.integers(-128, 128, 256, dtype=np.int8)
    res = rng.integers(-128, 128, (37, 50), dtype=np.int8)
    res[0, :3] = (-128, 127, 0)
    want = res.copy()
    block = want[:, 11:29].copy()
    kernels.apply_act_table(block, table)
    want[:, 11:29] = block
    jit_elt.act_table_cols(table, res[:, 11:29])
    np.testing.assert_array_equal(res, want)


@pytest.fixture(scope="module")
def se_net():  # type: ignore[no-untyped-def]
    """eltwise_net (two squeeze-excite gates, a per-channel Add and Sub) compiled for 1
    and 3 cores."""
    from qdq_models import eltwise_net, normal_inputs, quantize_qdq

    from vfpga.driver import compile_graph
    from vfpga.frontend.qdq_lower import lower_qdq_mapped
    from vfpga.hw import load_hw

    g = lower_qdq_mapped(quantize_qdq(eltwise_net(0), normal_inputs((1, 3, 16, 16), 8, 1))).graph
    hw = load_hw("pool16")
    return g, {c: compile_graph(g, hw, c) for c in (1, 3)}


@pytest.mark.parametrize("cores", [[4], [9, 2, 5]])
def test_plans_use_the_compiled_steps_and_equal_the_interpreter(se_net, cores) -> None:  # type: ignore[no-untyped-def]
    """From the emulator's side: the plans of a squeeze-excite net run the gate and the
    squeeze as compiled steps, and every DDR and buffer byte, the counters and the
    result equal the reference interpreter's."""
    from functools import partial

    from emu_helpers import run_compiled

    from vfpga.emulator import Accelerator
    from vfpga.hw import load_hw

    g, res = se_net
    hw = load_hw("pool16")
    slow, _ = run_compiled(Accelerator(hw, fast=False), g, res[len(cores)].vfb, cores)
    fast, t = run_compiled(Accelerator(hw), g, res[len(cores)].vfb, cores, runs=2)
    assert fast[2], fast[3]
    assert fast == slow
    used = {
        s.func
        for _, plan in t.loaded.plans.values()
        if plan is not None
        for s in plan.steps
        if isinstance(s, partial)
    }
    assert jit_elt.global_avg in used
    assert jit_elt.lookup_period in used


@pytest.mark.parametrize("cores", [[4], [9, 2, 5]])
def test_max_pool_steps_equal_the_interpreter(cores) -> None:  # type: ignore[no-untyped-def]
    """SPPF-style max pools (5x5 stride 1 padded 2, 2x2 stride 2) run as compiled steps with
    the interpreter's bytes."""
    from functools import partial

    from emu_helpers import run_compiled
    from qgraph_builders import GraphBuilder

    from vfpga.driver import compile_graph
    from vfpga.emulator import Accelerator
    from vfpga.hw import load_hw

    b = GraphBuilder((16, 12, 12), seed=7)
    y = b.conv(b.input, 24, k=(1, 1))
    y = b.pool(y, "max", k=5, s=1, p=2)
    y = b.pool(y, "max", k=2, s=2)
    g = b.build([b.conv(y, 8, k=(1, 1))], "maxpools")
    hw = load_hw("pool16")
    res = compile_graph(g, hw, len(cores))
    slow, _ = run_compiled(Accelerator(hw, fast=False), g, res.vfb, cores)
    fast, t = run_compiled(Accelerator(hw), g, res.vfb, cores, runs=2)
    assert fast[2], fast[3]
    assert fast == slow
    steps = [s for _, p in t.loaded.plans.values() if p is not None for s in p.steps]
    assert any(isinstance(s, partial) and s.func is jit_elt.max_pool for s in steps)
