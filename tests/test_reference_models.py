"""The golden reference is ONNX Runtime's arithmetic: bundled models, quantized and
lowered, give ORT's int8 tensors bit for bit on every layer (end to end and each node on
ORT's own inputs)."""

from __future__ import annotations

import pytest

from vfpga.frontend.pipeline import load_model
from vfpga.models import export_model
from vfpga.reference.compare import compare_layers, random_inputs


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "ops"),
    [
        # conv, depthwise conv, global average pool
        ("mobilenet_v1", {"conv", "dwconv", "pool:global_avg"}),
        # concat, average pools with 2x2 ties, max pool, LRN, Softmax
        ("zoo-inception_v1", {"conv", "concat", "pool:avg", "pool:max", "host:Softmax"}),
        # residual Add, grouped and depthwise convs, average pool, Softmax
        ("zoo-shufflenet", {"add", "dwconv", "pool:avg", "host:Softmax"}),
    ],
)
def test_every_layer_is_identical_to_onnxruntime(name: str, ops: set[str]) -> None:
    loaded = load_model(export_model(name, seed=0), seed=0)
    for x in random_inputs(loaded.qdq, 2, seed=1):
        rep = compare_layers(loaded.lowered, loaded.qdq, x)
        assert ops <= {layer.op for layer in rep.layers}, {layer.op for layer in rep.layers}
        assert len(rep.layers) >= 25
        assert rep.first_mismatch is None, rep.layers[rep.first_mismatch]
        for layer in rep.layers:
            assert layer.identical == 1.0 and layer.max_abs_diff == 0, layer
            assert layer.isolated == 1.0 and layer.isolated_max_diff == 0, layer
