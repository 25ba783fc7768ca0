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
