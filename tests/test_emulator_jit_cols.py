"""The compiled im2col of the epoch plans (``vfpga.emulator.jit_cols``) writes exactly the
rows the numpy code (``epoch._cols_into``) writes: tiles read from strided DDR boxes, with
the LOAD's padding around the box and the CONV's padding around the tile, any kernel and
stride, several tiles into one matrix."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vfpga.emulator import jit_cols, kernels
from vfpga.emulator.epoch import _Box, _cols_into, _cols_params, _Group, _Tile

pytestmark = pytest.mark.skipif(not jit_cols.available(),
                                reason="numba cannot compile on this platform (never in CI)")


@st.composite
def _tile(draw):  # type: ignore[no-untyped-def]
    c = draw(st.integers(1, 9))
    n0, n1 = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    bpads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h, w = bpads[0] + n0 + bpads[1], bpads[2] + n1 + bpads[3]
    kh, kw = draw(st.integers(1, min(4, h + 2))), draw(st.integers(1, min(4, w + 2)))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    gpads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    if h + gpads[0] + gpads[1] < kh or w + gpads[2] + gpads[3] < kw:
        gpads = (kh, kh, kw, kw)
    s1 = c + draw(st.integers(0, 3))
    s0 = n1 * s1 + draw(st.integers(0, 5))
    box = _Box(draw(st.integers(0, 7)), n0, n1, c, s0, s1, bpads,  # type: ignore[arg-type]
               draw(st.integers(0, 255)))
    geo = kernels.conv_geometry((h, w, c), (2, kh, kw, c), stride=(sh, sw), pads=gpads,
                                pad_value=draw(st.integers(-128, 127)))
    return box, geo


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_tile(), min_size=1, max_size=4), st.integers(0, 2**32 - 1))
def test_cols_equals_numpy(tiles, seed: int) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    need = max(b.ddr + (b.n0 - 1) * b.s0 + (b.n1 - 1) * b.s1 + b.n2 for b, _ in tiles)
    mem = rng.integers(0, 256, need + 3, dtype=np.uint8)
    # one group: the tiles stacked along the rows (their K padded to the widest)
    k = max(g.kh * g.kw * g.in_c for _, g in tiles)
    grp = _Group((k,), [_Tile(((b, g),), g.oh * g.ow) for b, g in tiles], [])
    prm = _cols_params(grp, 0, 1, k)
    assert prm is not None and prm[1] == need
    want = np.zeros((grp.m, k), np.uint8)
    got = np.zeros((grp.m, k), np.uint8)
    r0 = 0
    for (box, geo), t in zip(tiles, grp.tiles, strict=True):
        _cols_into(want, r0 * k, k, box, geo, mem)
        r0 += t.rows
    jit_cols.cols(mem, got.reshape(-1), prm[0])
    assert np.array_equal(got, want)


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    c=st.integers(1, 9),
    k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    pads=st.tuples(*[st.integers(0, 3)] * 4),
    pad=st.integers(-128, 127),
    seed=st.integers(0, 2**32 - 1),
)
def test_im2col_u8_compiled_equals_numpy(
    h: int, w: int, c: int, k: tuple[int, int], s: tuple[int, int],
    pads: tuple[int, int, int, int], pad: int, seed: int,
) -> None:
    """The per-core plans' uint8 im2col (:class:`kernels.Im2colU8`) built by the compiled
    kernel from the tile (one box, the whole tile) has the bytes of its numpy passes (XOR
    into the padded tile, windowed copy), on every call (the matrix buffer is reused);
    a tile that is not contiguous takes the numpy passes."""
    t, b, lf, r = pads
    if h + t + b < k[0] or w + lf + r < k[1]:
        return
    geo = kernels.conv_geometry((h, w, c), (3, k[0], k[1], c), stride=s, pads=pads,
                                pad_value=pad)
    rng = np.random.default_rng(seed)
    compiled = kernels.Im2colU8(geo)
    old = kernels._USE_JIT_IM2COL
    kernels._USE_JIT_IM2COL = False
    try:
        numpy = kernels.Im2colU8(geo)
        numpy(np.zeros((h, w, c), np.int8))  # set up without the compiled kernel
    finally:
        kernels._USE_JIT_IM2COL = old
    for _ in range(2):
        x = rng.integers(-128, 128, (h, w, c), dtype=np.int8)
        want = numpy(x).copy()
        np.testing.assert_array_equal(compiled(x), want)
        wide = rng.integers(-128, 128, (h, w, c + 2), dtype=np.int8)
        np.testing.assert_array_equal(compiled(wide[:, :, :c]), numpy(wide[:, :, :c]))
    plain = k == (1, 1) and s == (1, 1)  # the padded tile is the matrix: one XOR pass
    assert (compiled._prm is not None) == (not plain)
