"""docs/conformance.md is what the code measures: every operator-test row and the bundled
models re-run and compared with the page."""

from __future__ import annotations

from pathlib import Path

import pytest

from vfpga.reference.conformance import (
    MIN_COS_FP32,
    MIN_COS_ORT,
    parse_models_table,
    parse_table,
    run_model,
    run_test,
)
from vfpga.reference.conformance import test_names as pytorch_test_names

DOC = Path(__file__).resolve().parent.parent / "docs" / "conformance.md"
ROWS = parse_table(DOC.read_text())


def _f(cell: str) -> float | None:
    return None if cell == "-" else float(cell)


def test_doc_lists_every_pytorch_converted_test() -> None:
    assert sorted(ROWS) == pytorch_test_names()
    passing = [r for r in ROWS.values() if r["result"] == "pass"]
    ops = {r["ops"] for r in passing}
    # the accelerator's operator families are covered by passing tests
    assert {"Conv", "AveragePool", "MaxPool", "BatchNormalization"} <= ops
    assert len(passing) >= 19
    # (N, C) inputs: fully connected layers and Softmax
    assert {"Gemm", "Softmax"} <= ops


@pytest.mark.parametrize("name", sorted(ROWS))
def test_operator_row(name: str) -> None:
    row = ROWS[name]
    res = run_test(name)
    assert res.status == row["result"], (res, row)
    if res.status == "unsupported":
        assert res.reason and row["note"][:40] in res.reason.replace("|", "\\|")
        return
    assert res.cos_ort is not None and res.cos_fp32 is not None
    assert res.cos_ort == pytest.approx(_f(row["cos_ort"]), abs=2e-6)
    assert res.cos_fp32 == pytest.approx(_f(row["cos_fp32"]), abs=2e-6)
    if res.identical is not None:
        assert res.identical == pytest.approx(_f(row["identical"]), abs=1e-4)
    if res.status == "pass":
        assert res.cos_ort >= MIN_COS_ORT and res.cos_fp32 >= MIN_COS_FP32


MODEL_ROWS = parse_models_table(DOC.read_text())
#: Models whose documented results miss the issue's bars (cosine >= 0.999 against ORT on
#: every input, the same arg-max on >= 99 of 100 inputs, >= 99.9 % identical int8
#: outputs), with the measured reason. Since ISA version 2 the reference performs ORT's
#: float32 requantization steps, since version 5 its float32 ConvTranspose sums (unet,
#: 98.8 % identical before), and every bundled model's int8 outputs are identical to
#: ORT's on all 100 inputs (docs/conformance.md): none is left.
KNOWN_MISSES: dict[str, str] = {}


def _argmax(row: dict[str, str]) -> tuple[float, float]:
    """The arg-max cell ``"94% (100%)"`` as percentages."""
    a, b = row["arg-max = ORT (within one level)"].split(" (")
    return float(a.rstrip("%")), float(b.rstrip("%)"))


def _pair(cell: str) -> tuple[float, float]:
    a, b = cell.split(" / ")
    return float(a), float(b)


def _identical(row: dict[str, str]) -> tuple[float, int] | None:
    """The identical-int8 cell ``"1.0000 (0)"``: fraction and largest difference."""
    cell = row["identical int8 (max diff)"]
    if cell == "-":
        return None
    frac, diff = cell.split(" (")
    return float(frac), int(diff.rstrip(")"))


def test_doc_lists_the_bundled_models() -> None:
    """Every bundled model is in the table, measured on 100 inputs, and meets the issue's
    bars (cosine, arg-max, identical int8) unless listed in KNOWN_MISSES."""
    from vfpga.models import model_names

    assert sorted(MODEL_ROWS) == sorted(model_names())
    for name, row in MODEL_ROWS.items():
        assert int(row["inputs"]) == 100, row
        cos_min, _ = _pair(row["cosine vs ORT (min / mean)"])
        assert cos_min >= MIN_COS_ORT, row
        assert _argmax(row)[0] >= 99, row
        if name in KNOWN_MISSES:
            continue
        same = _identical(row)
        assert same is not None and same[0] >= 0.999, row


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v1", "zoo-squeezenet", "zoo-inception_v1",
                                  "unet"])
def test_model_row(name: str) -> None:
    """The first 10 of the documented 100 inputs (the same seeded sequence): the minimum
    cosine cannot be below the documented minimum over all 100, the means and fractions
    stay close (equal where the doc shows every output identical)."""
    row = MODEL_ROWS[name]
    r = run_model(name, num_inputs=10)
    cos_min, cos_mean = _pair(row["cosine vs ORT (min / mean)"])
    assert r.nodes == int(row["nodes"])
    assert r.cosine_min >= cos_min - 1e-6
    assert r.cosine_mean == pytest.approx(cos_mean, abs=2e-3)
    assert r.argmax_agreement >= _argmax(row)[0] / 100 - 0.1
    assert r.argmax_near_agreement is not None
    assert r.argmax_near_agreement >= _argmax(row)[1] / 100 - 0.1
    same = _identical(row)
    if same is not None:
        assert r.identical_int8 is not None and r.max_int8_diff is not None
        if same == (1.0, 0):  # identical on all 100 inputs, so on these 10
            assert (r.identical_int8, r.max_int8_diff) == (1.0, 0)
        else:
            assert r.identical_int8 == pytest.approx(same[0], abs=0.05)
            assert r.max_int8_diff <= same[1]
    ref_fp32, _ = row["cosine vs fp32 (ref / ORT)"].split(" / ")
    if ref_fp32 != "-":
        assert r.fp32_cosine_mean == pytest.approx(float(ref_fp32), abs=5e-3)
