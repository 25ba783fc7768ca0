"""Property tests over hostile inputs (issue 12), bounded to well under two minutes in
all: resealed mutations of compiled binaries (header, directory, tables, instructions,
DATA, string table, host ops, any byte) run next to an honest tenant, mutated ONNX models
through the importer, and generated scenario files. The only errors allowed are vfpga's
own (``VfpgaError`` subclasses); the honest tenant's bytes never change. The long campaign
is benchmarks/fuzz_binaries.py."""

from __future__ import annotations

import contextlib
import functools
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from binary_mutations import KINDS, Arena, Mutator
from hostile_seeds import seed_binaries
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vfpga.backend.binary import from_bytes
from vfpga.errors import VfpgaError

SEEDS = ("net12", "net16", "hostops")


def bounded(n: int) -> settings:
    """``n`` examples, no per-example deadline (the machine is shared)."""
    return settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))


@functools.cache
def arena() -> Arena:
    return Arena(seed_binaries()["net12"], request_seconds=30.0)


@functools.cache
def mutator(name: str) -> Mutator:
    return Mutator(seed_binaries()[name])


@bounded(400)
@given(name=st.sampled_from(SEEDS), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**32))
def test_reader_raises_only_binary_format_errors(name: str, kind: str, seed: int) -> None:
    _what, blob = mutator(name).mutate(np.random.default_rng(seed), kind)
    with contextlib.suppress(VfpgaError):
        from_bytes(blob, "mutant")


@bounded(150)
@given(name=st.sampled_from(SEEDS), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**32))
def test_mutant_next_to_an_honest_tenant(name: str, kind: str, seed: int) -> None:
    what, blob = mutator(name).mutate(np.random.default_rng(seed), kind)
    o = arena().run(blob, inputs_seed=seed % 1000)
    assert o.stage != "foreign", (what, o.error)
    assert o.honest_ok, (what, o)
    assert not o.over_budget, (what, o)


# ----------------------------------------------------------------------- ONNX
@functools.cache
def tiny_bytes() -> bytes:
    import tempfile

    from test_cli_compile import tiny_model

    with tempfile.TemporaryDirectory() as d:
        return tiny_model(Path(d) / "t.onnx").read_bytes()


_INTS = st.sampled_from([0, 1, 2, 3, -1, 255, 256, 100000, 2**31 - 1])


@st.composite
def onnx_mutation(draw: st.DrawFn) -> onnx.ModelProto:
    m = onnx.ModelProto.FromString(tiny_bytes())
    g = m.graph
    what = draw(st.sampled_from(["attr", "dims", "init", "opset", "input", "drop_node"]))
    if what == "attr":
        n = g.node[draw(st.integers(0, len(g.node) - 1))]
        name = draw(st.sampled_from(["group", "strides", "pads", "kernel_shape", "dilations",
                                     "axis", "transB"]))
        v = draw(_INTS)
        for a in list(n.attribute):
            if a.name == name:
                n.attribute.remove(a)
        ints = name in ("strides", "pads", "kernel_shape", "dilations")
        count = 4 if name == "pads" else 2
        n.attribute.append(onnx.helper.make_attribute(name, [v] * count if ints else v))
    elif what == "dims":
        t = g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
        k = draw(st.integers(0, max(len(t.dims) - 1, 0)))
        if t.dims:
            t.dims[k] = draw(_INTS.filter(lambda v: v >= 0))
    elif what == "init":
        t = g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
        arr = onnx.numpy_helper.to_array(t).copy()
        arr.flat[draw(st.integers(0, arr.size - 1))] = draw(
            st.sampled_from([np.nan, np.inf, -np.inf, 1e38, 0.0]))
        t.CopyFrom(onnx.numpy_helper.from_array(arr, t.name))
    elif what == "opset":
        m.opset_import[0].version = draw(st.sampled_from([1, 7, 11, 99, 1000]))
    elif what == "input":
        dims = g.input[0].type.tensor_type.shape.dim
        d = dims[draw(st.integers(0, len(dims) - 1))]
        v = draw(st.sampled_from([0, -1, 1, 2, 100000, None]))
        if v is None:
            d.dim_param = "N"
        else:
            d.dim_value = v
    else:
        del g.node[draw(st.integers(0, len(g.node) - 1))]
    return m


@bounded(60)
@given(model=onnx_mutation())
def test_importer_raises_only_vfpga_errors(model: onnx.ModelProto, tmp_path_factory) -> None:
    from vfpga.frontend.pipeline import load_model

    p = tmp_path_factory.mktemp("onnx") / "m.onnx"
    p.write_bytes(model.SerializeToString())
    try:
        load_model(p, num_random=2)
    except VfpgaError as exc:
        assert "m.onnx" in str(exc) or "model" in str(exc)


# ------------------------------------------------------------------- scenarios
_VALUES = st.one_of(st.integers(-5, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=8), st.booleans(), st.lists(st.integers(0, 3), max_size=2))


@st.composite
def scenario_text(draw: st.DrawFn, binary: str) -> str:
    def value() -> str:
        v = draw(_VALUES)
        if isinstance(v, float):
            return "nan" if v != v else ("inf" if v == float("inf") else "-inf"
                                         if v == float("-inf") else repr(v))
        if isinstance(v, bool):
            return "true" if v else "false"
        return json.dumps(v)

    lines = []
    if draw(st.booleans()):
        lines.append(f"duration_ms = {value() if draw(st.booleans()) else 2}")
    for key in ("hw", "strategy"):
        if draw(st.integers(0, 3)) == 0:
            lines.append(f"{key} = {value()}")
    for i in range(draw(st.integers(0, 2))):
        lines.append("[[tenant]]")
        lines.append(f'name = "t{i}"' if draw(st.integers(0, 4)) else f"name = {value()}")
        lines.append(f"cores = {draw(st.sampled_from(['1', '2', '0', '99', value()]))}")
        src = draw(st.sampled_from(["binary", "binary", "model", "both", "none", "bad"]))
        if src in ("binary", "both"):
            lines.append(f'binary = "{binary}"')
        if src in ("model", "both"):
            lines.append(f"model = {value()}")
        if src == "bad":
            lines.append('binary = "missing.vfb"')
        for key in ("arrive_ms", "leave_ms", "colour"):
            if draw(st.integers(0, 3)) == 0:
                lines.append(f"{key} = {value()}")
    if draw(st.integers(0, 2)) == 0:
        lines += ["[[resize]]", 'tenant = "t0"', f"at_ms = {value()}", f"cores = {value()}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def scenario_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("scenarios")
    (d / "net.vfb").write_bytes(seed_binaries()["net12"])
    return d


@bounded(120)
@given(data=st.data())
def test_scenarios_raise_only_scenario_errors(data: st.DataObject, scenario_dir: Path) -> None:
    from vfpga.runtime.scenario import load_scenario, simulate

    text = data.draw(scenario_text("net.vfb"))
    p = scenario_dir / "s.toml"
    p.write_text(text)
    try:
        sc = load_scenario(p)
    except VfpgaError:
        return
    sc.duration_ms = min(sc.duration_ms, 2.0)  # keep the property test short
    with contextlib.suppress(VfpgaError):
        simulate(sc)
