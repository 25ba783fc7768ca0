"""Conformance of the whole front end and the golden reference: the ONNX wheel's
PyTorch-converted operator tests (``onnx/backend/test/data/pytorch-converted/``) and the
bundled models (``--models``), compared with ONNX Runtime and the fp32 models.

Each test's model goes through :func:`vfpga.frontend.normalize.normalize`, is quantized
by :func:`vfpga.quant.quantize.quantize_model` (QDQ, per-channel symmetric int8 weights,
asymmetric uint8 activations, MinMax, merged Concat ranges) calibrated on the test's own
input, is lowered by
:func:`vfpga.frontend.qdq_lower.lower_qdq` and run by the golden reference. The result is
compared with ONNX Runtime running the QDQ model (cosine, identical int8 fraction) and
with the test's fp32 expected output (cosine). The tests' inputs have batch 2..10, the
front end takes batch-1 models: the model's batch dimension is set to 1 and every batch
item runs separately (a test whose output keeps the test's batch because a constant of that
batch broadcasts, PoissonNLLLoss's target, compares item i's row i with the expected row
i).

``python -m vfpga.reference.conformance [--write docs/conformance.md]`` prints (or writes
into the marked region of the doc) the result table; tests/test_conformance.py re-runs
every row and checks it against the doc.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from vfpga.errors import VfpgaError
from vfpga.fileio import atomic_write

BEGIN = "<!-- conformance-table:begin -->"
END = "<!-- conformance-table:end -->"
#: A test passes when the reference's cosine against ORT and against fp32 reach these.
MIN_COS_ORT = 0.999
MIN_COS_FP32 = 0.99


def tests_dir() -> Path:
    """The folder of the onnx wheel's PyTorch-converted tests."""
    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "pytorch-converted"


def test_names() -> list[str]:
    """Every test of :func:`tests_dir`, sorted."""
    return sorted(p.name for p in tests_dir().iterdir() if (p / "model.onnx").is_file())


@dataclass
class ConformanceResult:
    """One test: ``status`` is ``pass``, ``fail`` (metrics below the bar) or
    ``unsupported`` (``reason`` is the front end's error); the metrics are over the whole
    batch: ``cos_ort`` the reference's dequantized output against ORT's, ``identical`` the
    fraction of identical int8 outputs, ``cos_fp32`` against the test's expected output."""

    name: str
    ops: str
    status: str
    reason: str = ""
    cos_ort: float | None = None
    identical: float | None = None
    cos_fp32: float | None = None


def _load_pb(path: Path) -> np.ndarray:
    t = onnx.TensorProto()
    t.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(t)


def _batch1(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with the first dimension of its inputs and outputs set to 1 and
    its intermediate shapes dropped (shape inference recomputes them)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {i.name for i in m.graph.initializer}
    for vi in list(m.graph.input) + list(m.graph.output):
        if vi.name in inits:
            continue
        dims = vi.type.tensor_type.shape.dim
        if len(dims):
            dims[0].ClearField("dim_param")
            dims[0].dim_value = 1
    del m.graph.value_info[:]
    return m


def _quantize(fp32: onnx.ModelProto, calib: list[np.ndarray]) -> onnx.ModelProto:
    """:func:`vfpga.quant.quantize.quantize_model` calibrated on ``calib``."""
    from vfpga.quant.quantize import quantize_model

    return quantize_model(fp32, calib_data=calib)


def run_test(name: str) -> ConformanceResult:
    """Run one PyTorch-converted test through the front end and the reference."""
    from vfpga.frontend.normalize import normalize
    from vfpga.frontend.qdq_lower import lower_qdq_mapped
    from vfpga.reference.compare import cosine, ort_session
    from vfpga.reference.executor import FLOAT_SUFFIX, run_reference

    folder = tests_dir() / name
    model = onnx.load(str(folder / "model.onnx"))
    ops = ", ".join(dict.fromkeys(n.op_type for n in model.graph.node))
    x = _load_pb(folder / "test_data_set_0" / "input_0.pb")
    x = x if x.dtype == np.int64 else x.astype(np.float32)  # int64: token ids, as they are
    expected = _load_pb(folder / "test_data_set_0" / "output_0.pb").astype(np.float32)
    items = [x[i : i + 1] for i in range(x.shape[0])] if x.ndim >= 2 else [x]
    try:
        fp32 = normalize(_batch1(model), f"{name}/model.onnx")
        qdq = _quantize(fp32, items)
        lowered = lower_qdq_mapped(qdq, f"{name}/model.onnx", quantized=True)
    except VfpgaError as exc:
        reason = str(exc).replace(f"{name}/model.onnx: ", "")
        return ConformanceResult(name, ops, "unsupported", reason)
    g = lowered.graph
    out = g.outputs[0]
    int8_name = lowered.onnx_int8.get(out)
    sess = ort_session(qdq, [int8_name[0]] if int8_name else [])
    in_name = qdq.graph.input[0].name
    ref_f, ort_f, same, total = [], [], 0, 0
    for xi in items:
        res = sess.run(None, {in_name: xi})
        r = run_reference(g, xi, keep_all=False)
        ref_f.append(r[out + FLOAT_SUFFIX].ravel())
        ort_f.append(np.asarray(res[0], dtype=np.float32).ravel())
        if int8_name is not None:
            o = np.asarray(res[1]).astype(np.int64).ravel() + int8_name[1]
            same += int((o == r[out].astype(np.int64).ravel()).sum())
            total += o.size
    rf, of = np.concatenate(ref_f), np.concatenate(ort_f)
    cos_ort = cosine(rf, of)
    fp32_f = rf
    if len(items) > 1 and all(r.size == expected.size for r in ref_f):
        # each batch-1 run has all the test's rows (a constant of the test's batch
        # broadcasts, PoissonNLLLoss's target): item i's row i is the test's row i
        fp32_f = np.concatenate([r.reshape(expected.shape)[i].ravel()
                                 for i, r in enumerate(ref_f)])
    res_ = ConformanceResult(
        name,
        ops,
        "pass",
        cos_ort=cos_ort,
        identical=same / total if total else None,
        cos_fp32=cosine(fp32_f, expected.ravel()) if expected.size == fp32_f.size else None,
    )
    if res_.cos_fp32 is None:
        res_.status, res_.reason = "fail", "output size differs from the expected output"
    elif cos_ort < MIN_COS_ORT or res_.cos_fp32 < MIN_COS_FP32:
        res_.status = "fail"
        res_.reason = "below the bar"
    return res_


def run_all(names: list[str] | None = None) -> list[ConformanceResult]:
    """:func:`run_test` for every test (or ``names``)."""
    return [run_test(n) for n in (names or test_names())]


@dataclass
class ModelResult:
    """One bundled model (:mod:`vfpga.models`) through ``load_model`` (normalize,
    quantize on 16 seeded random inputs, lower) compared with ORT on ``num_inputs`` other
    random inputs (see :class:`~vfpga.reference.compare.OrtComparison`) and with the fp32
    model; ``seconds`` is the reference's time per input."""

    name: str
    nodes: int
    num_inputs: int
    cosine_min: float
    cosine_mean: float
    argmax_agreement: float
    argmax_near_agreement: float | None
    identical_int8: float | None
    max_int8_diff: int | None
    fp32_cosine_mean: float | None
    ort_fp32_cosine_mean: float | None
    fp32_argmax_agreement: float | None
    seconds: float


def run_model(name: str, num_inputs: int = 10, seed: int = 0) -> ModelResult:
    """Run one bundled model (see :class:`ModelResult`)."""
    import time

    from vfpga.frontend.pipeline import load_model
    from vfpga.models import export_model
    from vfpga.reference.compare import compare_with_ort, random_inputs
    from vfpga.reference.executor import run_reference

    loaded = load_model(export_model(name, seed=seed), seed=seed)
    inputs = random_inputs(loaded.qdq, num_inputs, seed + 1)
    c = compare_with_ort(
        loaded.graph,
        loaded.qdq,
        inputs,
        onnx_int8=loaded.lowered.onnx_int8,
        fp32_model=loaded.fp32,
    )
    t0 = time.perf_counter()
    run_reference(loaded.graph, inputs[0], keep_all=False)
    secs = time.perf_counter() - t0
    return ModelResult(
        name,
        len(loaded.graph.nodes),
        c.num_inputs,
        c.cosine_min,
        c.cosine_mean,
        c.argmax_agreement,
        c.argmax_near_agreement,
        c.identical_int8,
        c.max_int8_diff,
        c.fp32_cosine_mean,
        c.ort_fp32_cosine_mean,
        c.fp32_argmax_agreement,
        secs,
    )


MODELS_BEGIN = "<!-- model-table:begin -->"
MODELS_END = "<!-- model-table:end -->"
#: Columns of the model table (tests/test_conformance.py reads it by these names).
MODEL_COLUMNS = (
    "model",
    "nodes",
    "inputs",
    "cosine vs ORT (min / mean)",
    "arg-max = ORT (within one level)",
    "identical int8 (max diff)",
    "cosine vs fp32 (ref / ORT)",
    "arg-max = fp32",
    "reference time",
)


def models_table(results: list[ModelResult]) -> str:
    """The doc table of the bundled models."""
    lines = [
        "Random inputs: seed 1 (standard normal); quantized on 16 random inputs, seed 0. "
        "Arg-max in parentheses: ORT's top class at most one int8 level below the "
        "reference's top. Identical int8: fraction of the final int8 outputs equal to "
        "ORT's, with the largest difference in int8 levels in parentheses.",
        "",
        "| " + " | ".join(MODEL_COLUMNS) + " |",
        "|" + "---|" * len(MODEL_COLUMNS),
    ]
    for r in results:
        same = "-" if r.identical_int8 is None else f"{r.identical_int8:.4f} ({r.max_int8_diff})"
        lines.append(
            f"| {r.name} | {r.nodes} | {r.num_inputs} | "
            f"{r.cosine_min:.6f} / {r.cosine_mean:.6f} | "
            f"{r.argmax_agreement:.0%} ({_pct(r.argmax_near_agreement)}) | "
            f"{same} | "
            f"{_fmt(r.fp32_cosine_mean)} / {_fmt(r.ort_fp32_cosine_mean)} | "
            f"{'-' if r.fp32_argmax_agreement is None else f'{r.fp32_argmax_agreement:.0%}'} | "
            f"{r.seconds:.2f} s |"
        )
    return "\n".join(lines)


def parse_models_table(text: str) -> dict[str, dict[str, str]]:
    """The rows of the doc's model table by model name (cells by :data:`MODEL_COLUMNS`)."""
    if MODELS_BEGIN not in text:
        return {}
    body = text.split(MODELS_BEGIN, 1)[1].split(MODELS_END, 1)[0]
    rows: dict[str, dict[str, str]] = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == len(MODEL_COLUMNS) and cells[1].isdigit():
            rows[cells[0]] = dict(zip(MODEL_COLUMNS, cells, strict=True))
    return rows


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


def _fmt(v: float | None, digits: int = 6) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def markdown_table(results: list[ConformanceResult]) -> str:
    """The doc table: one row per test."""
    lines = [
        "| test | ONNX ops | result | cosine vs ORT | identical int8 | cosine vs fp32 | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        note = r.reason.replace("|", "\\|").replace("\n", " ")
        if len(note) > 140:
            note = note[:137] + "..."
        lines.append(
            f"| {r.name} | {r.ops} | {r.status} | {_fmt(r.cos_ort)} | "
            f"{_fmt(r.identical, 4)} | {_fmt(r.cos_fp32)} | {note} |"
        )
    n_pass = sum(r.status == "pass" for r in results)
    n_uns = sum(r.status == "unsupported" for r in results)
    n_fail = sum(r.status == "fail" for r in results)
    lines.append("")
    lines.append(f"{n_pass} pass, {n_fail} fail, {n_uns} unsupported (of {len(results)}).")
    return "\n".join(lines)


def parse_table(text: str) -> dict[str, dict[str, str]]:
    """The rows of the doc's table by test name (cells as strings)."""
    body = text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows: dict[str, dict[str, str]] = {}
    keys = ["test", "ops", "result", "cos_ort", "identical", "cos_fp32", "note"]
    for line in body.splitlines():
        if not line.startswith("| test_"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        rows[cells[0]] = dict(zip(keys, cells, strict=False))
    return rows


def write_region(path: Path, begin: str, end: str, body: str) -> None:
    """Replace the ``begin``..``end`` region of ``path`` with ``body`` (atomically)."""
    text = path.read_text()
    if begin not in text or end not in text:
        raise VfpgaError(f"{path}: no {begin} ... {end} region")
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    new = f"{head}{begin}\n{body}\n{end}{tail}"
    atomic_write(path, new)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", type=Path, help="update the table in this markdown file")
    ap.add_argument("--models", action="store_true", help="run the bundled models instead")
    ap.add_argument("--num-inputs", type=int, default=100, help="inputs per model")
    ap.add_argument("names", nargs="*", help="tests or models to run (default: all)")
    args = ap.parse_args()
    if args.models:
        from vfpga.models import model_names

        res = []
        for n in args.names or model_names():
            res.append(run_model(n, args.num_inputs))
            print(res[-1], flush=True)
        body = models_table(res)
        begin, end = MODELS_BEGIN, MODELS_END
    else:
        body = markdown_table(run_all(args.names or None))
        begin, end = BEGIN, END
    if args.write:
        write_region(args.write, begin, end, body)
    else:
        print(body)


if __name__ == "__main__":
    main()
