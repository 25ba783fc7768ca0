"""ISA v3 spatial CONV forms end to end (issue 14): dilated convolutions (``dil_h``,
``dil_w``) and convolutions over a zero-inserted input (``ups_h``, ``ups_w``: transposed
convolutions, nearest resize) compile, and the emulator equals the integer reference at
every layer on 1, 4 and 16 cores."""

from __future__ import annotations

import numpy as np
import pytest
from qgraph_builders import GraphBuilder

from vfpga import flow
from vfpga.driver import compile_graph
from vfpga.hw import load_hw
from vfpga.isa.codec import decode
from vfpga.isa.spec import Opcode

HW = load_hw("pool16")


def _graph():  # type: ignore[no-untyped-def]
    b = GraphBuilder((8, 20, 20), seed=1)
    x = b.conv(b.input, 16, (3, 3), dil=(2, 2))
    x = b.conv(x, 16, (3, 3), dil=(6, 6))  # a window wider than the map: mostly padding
    y = b.conv(x, 16, (2, 2), ups=(2, 2), pads=(1, 1, 1, 1))  # ConvTranspose k2 s2
    z = b.conv(y, 16, (4, 4), ups=(2, 2), pads=(2, 2, 2, 2))  # k4 s2 p1
    z2 = b.conv(z, 8, (3, 3), ups=(2, 2), pads=(1, 1, 2, 2))  # k3 s2 p1 output_padding 1
    # nearest 2x: depthwise 2x2 over the zero-inserted input
    u = b.conv(x, 16, (2, 2), ups=(2, 2), pads=(1, 1, 1, 1), groups=16, act="none")
    return b.build([z2, u], "spatial")


@pytest.mark.parametrize("cores", [1, 4, 16])
def test_dilated_and_upsampled_convs_emulator_equals_reference(cores: int) -> None:
    g = _graph()
    res = compile_graph(g, HW, cores)
    x = np.random.default_rng(0).standard_normal(g.tensors[g.inputs[0]].shape)
    rep = flow.check_one(res, HW, x.astype(np.float32))
    assert [lc.identical for lc in rep.layers] == [1.0] * 6
    assert rep.outputs_equal
    # the v3 fields are in the words, and only in the words of the layers that use them
    conv = decode(res.vfb.text).by_op[Opcode.CONV]
    assert set(np.unique(conv["dil_h"])) == {0, 2, 6}
    assert set(np.unique(conv["ups_h"])) == {0, 2}
    assert not np.any((conv["dil_h"] > 0) & (conv["ups_h"] > 0))

def test_upsampled_macs_count_input_products_only() -> None:
    g = _graph()
    res = compile_graph(g, HW, 1)
    spec = res.layers[2].spec  # ConvTranspose k2 s2 on 20x20 -> 40x40: 4 products per input
    assert spec.macs == 16 * 16 * 20 * 20 * 4
