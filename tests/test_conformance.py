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
#: every input, the same arg-max on >= 99 of 100 inputs, >= 99 % identical int8 outputs),
#: with the reason; docs/conformance.md explains each.
_NEAR_TIE = "top-2 random-weight logits within one int8 level (ORT's float32 rounding flips them)"
_SPARSE = (
    "near-uniform Softmax over 1000 classes: almost every probability is 0 or 1 level, so "
    "one level moved by ORT's float32 rounding drops the cosine of the sparse vector"
)
KNOWN_MISSES: dict[str, str] = {
    "mobilenet_v1": _NEAR_TIE,
    "inception_v3": _NEAR_TIE,
    "zoo-alexnet": _SPARSE,
    "zoo-zfnet512": _SPARSE,
    "zoo-vgg19": _SPARSE + "; " + _NEAR_TIE,
    "zoo-resnet50": _SPARSE,
    "zoo-squeezenet": _SPARSE,
    "zoo-shufflenet": _SPARSE + "; " + _NEAR_TIE,
}


def _argmax(row: dict[str, str]) -> tuple[float, float]:
    """The arg-max cell ``"94% (100%)"`` as percentages."""
    a, b = row["arg-max = ORT (within one level)"].split(" (")
    return float(a.rstrip("%")), float(b.rstrip("%)"))


def _pair(cell: str) -> tuple[float, float]:
    a, b = cell.split(" / ")
    return float(a), float(b)


def test_doc_lists_the_bundled_models() -> None:
    """Every bundled model is in the table, measured on 100 inputs, and meets the issue's
    bars (cosine, arg-max) unless listed in KNOWN_MISSES; ORT's rounding model agrees
    with ORT on >= 99.9 % of the outputs (so every difference is ORT's float32 rounding)."""
    from vfpga.models import model_names

    assert sorted(MODEL_ROWS) == sorted(model_names())
    for name, row in MODEL_ROWS.items():
        assert int(row["inputs"]) == 100, row
        cos_min, _ = _pair(row["cosine vs ORT (min / mean)"])
        emu = float(row["identical int8, ORT rounding model"].split(" (")[0])
        assert emu >= 0.999, row
        if name in KNOWN_MISSES:
            # the measured levels of the misses (docs/conformance.md explains them): the
            # mean cosine stays high, arg-max disagreements are near-ties
            _, cos_mean = _pair(row["cosine vs ORT (min / mean)"])
            assert cos_min >= 0.985 and cos_mean >= 0.998, row
            assert _argmax(row)[0] >= 90 and _argmax(row)[1] >= 97, row
            continue
        assert cos_min >= MIN_COS_ORT, row
        assert _argmax(row)[0] >= 99, row


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v1", "zoo-squeezenet", "zoo-inception_v1"])
def test_model_row(name: str) -> None:
    """The first 10 of the documented 100 inputs (the same seeded sequence): the minimum
    cosine cannot be below the documented minimum over all 100, the means and fractions
    stay close, and ORT's rounding model is as exact as documented."""
    row = MODEL_ROWS[name]
    r = run_model(name, num_inputs=10, num_emulated=10)
    cos_min, cos_mean = _pair(row["cosine vs ORT (min / mean)"])
    assert r.nodes == int(row["nodes"])
    assert r.cosine_min >= cos_min - 1e-6
    # means over 10 of the 100 inputs: close, not equal (a Softmax model's cosine varies)
    assert r.cosine_mean == pytest.approx(cos_mean, abs=2e-3)
    assert r.argmax_agreement >= _argmax(row)[0] / 100 - 0.1
    assert r.argmax_near_agreement is not None
    assert r.argmax_near_agreement >= _argmax(row)[1] / 100 - 0.1
    if row["identical int8"] != "-":
        assert r.identical_int8 == pytest.approx(float(row["identical int8"]), abs=0.05)
    emu_cell = row["identical int8, ORT rounding model"]
    if emu_cell != "-":
        assert r.emulated_identical_int8 == pytest.approx(
            float(emu_cell.split(" (")[0]), abs=1e-4
        )
    ref_fp32, _ = row["cosine vs fp32 (ref / ORT)"].split(" / ")
    if ref_fp32 != "-":
        assert r.fp32_cosine_mean == pytest.approx(float(ref_fp32), abs=5e-3)
