"""docs/conformance.md is what the code measures: every operator-test row and the bundled
models re-run and compared with the page."""

from __future__ import annotations

from pathlib import Path

import pytest

from vfpga.reference.conformance import (
    MIN_COS_FP32,
    MIN_COS_ORT,
    MODELS_BEGIN,
    MODELS_END,
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
    assert len(passing) >= 15


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


def _model_rows() -> dict[str, list[str]]:
    text = DOC.read_text()
    if MODELS_BEGIN not in text:
        return {}
    body = text.split(MODELS_BEGIN, 1)[1].split(MODELS_END, 1)[0]
    rows = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 8 and cells[1].isdigit():
            rows[cells[0]] = cells
    return rows


MODEL_ROWS = _model_rows()


def test_doc_lists_the_bundled_models() -> None:
    from vfpga.models import model_names

    assert sorted(MODEL_ROWS) == sorted(model_names())
    for cells in MODEL_ROWS.values():
        cos_min = float(cells[2].split(" / ")[0])
        assert cos_min >= 0.98, cells


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v1", "zoo-squeezenet", "zoo-inception_v1"])
def test_model_row(name: str) -> None:
    cells = MODEL_ROWS[name]
    r = run_model(name, num_inputs=10)
    cos_min, cos_mean = (float(v) for v in cells[2].split(" / "))
    assert r.nodes == int(cells[1])
    assert r.cosine_min == pytest.approx(cos_min, abs=1e-4)
    assert r.cosine_mean == pytest.approx(cos_mean, abs=1e-4)
    assert r.argmax_agreement == pytest.approx(float(cells[3].rstrip("%")) / 100, abs=0.1)
    if cells[4] != "-":
        assert r.identical_int8 == pytest.approx(float(cells[4]), abs=0.03)
    ref_fp32 = cells[5].split(" / ")[0]
    if ref_fp32 != "-":
        assert r.fp32_cosine_mean == pytest.approx(float(ref_fp32), abs=1e-4)
