"""The paper's experiments in a reduced configuration (one model, few points): every
experiment writes its table, plot and JSON, and computes its acceptance metrics; the
scenario simulator and the CLI entries work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from vfpga.cli.main import cli
from vfpga.experiments.paper import ExperimentConfig, run_experiments


@pytest.mark.slow
def test_reduced_experiments(tmp_path: Path) -> None:
    cfg = ExperimentConfig(out=tmp_path, models=("mobilenet_v1",), core_counts=(1, 4, 16),
                           task_counts=(1, 2, 16), mixes=2, ifp_sample=40, repeat=2,
                           log=lambda s: None)
    res = run_experiments(["all"], cfg)
    for name in ("reconfig", "isolation", "scaling", "multitask", "prediction"):
        for ext in ("md", "png", "json"):
            assert (tmp_path / f"{name}.{ext}").stat().st_size > 0, (name, ext)
        assert json.loads((tmp_path / f"{name}.json").read_text())["metrics"]
    iso = res["isolation"]["metrics"]
    assert {"max_deviation_75_pct", "max_deviation_50_pct", "max_deviation_25_pct"} <= set(iso)
    assert iso["max_deviation_75_pct"] <= 1.0
    # the shared-bank model does interfere when the placement is not bank-aligned
    assert iso["max_deviation_50_misaligned_pct"] > iso["max_deviation_50_pct"]
    assert res["prediction"]["metrics"]["mobilenet_v1"]["mae_solo_pct"] <= 5.0
    assert "mobilenet_v1" in res["scaling"]["metrics"]["loss_pct"]
    gains = res["multitask"]["metrics"]
    assert gains["gain_vs_static"][1] > 1.0 and gains["gain_vs_tdm"][0] > 0
    assert res["reconfig"]["metrics"]["dynamic_ms"][1] < 50
    assert "| MobileNet v1 |" in (tmp_path / "scaling.md").read_text()


@pytest.mark.slow
def test_pool_simulate_cli(tmp_path: Path) -> None:
    sc = tmp_path / "s.toml"
    sc.write_text("""duration_ms = 6
[[tenant]]
name = "a"
model = "mobilenet_v1"
cores = 4
[[tenant]]
name = "b"
model = "mobilenet_v1"
cores = 2
arrive_ms = 1
leave_ms = 5
[[resize]]
tenant = "a"
at_ms = 2
cores = 8
""")
    r = CliRunner().invoke(cli, ["pool", "simulate", str(sc), "--plot", str(tmp_path / "t.png")])
    assert r.exit_code == 0, r.output
    assert "a resized 4 -> 8" in r.output and "reconfiguration" in r.output
    assert (tmp_path / "t.png").stat().st_size > 0


def test_scenario_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('duration_ms = 5\n[[tenant]]\nname = "a"\ncores = 0\nmodel = "x"\n')
    r = CliRunner().invoke(cli, ["pool", "simulate", str(bad)])
    assert r.exit_code != 0 and "'cores' must be an integer in 1..16" in r.output
    bad.write_text('duration_ms = 5\n[[resize]]\ntenant = "z"\nat_ms = 1\ncores = 2\n'
                   '[[tenant]]\nname = "a"\ncores = 1\nmodel = "x"\n')
    r = CliRunner().invoke(cli, ["pool", "simulate", str(bad)])
    assert r.exit_code != 0 and "unknown tenant 'z'" in r.output
    r = CliRunner().invoke(cli, ["pool", "simulate", str(tmp_path / "none.toml")])
    assert r.exit_code != 0 and "no such scenario file" in r.output
    r = CliRunner().invoke(cli, ["experiment", "scaling", "--out", str(tmp_path),
                                 "--models", "alexnet"])
    assert r.exit_code != 0 and "unknown model" in r.output


def test_cached_binary_built_by_other_code_is_rebuilt(tmp_path, monkeypatch) -> None:
    """A cached paper-model binary is reused only if the sidecar records this code's source
    digest: one built before a compiler change (e.g. new tilings) is rebuilt."""
    import json
    from types import SimpleNamespace

    from vfpga.experiments import models
    from vfpga.fileio import source_digest

    vfb_path = tmp_path / "tiny.pool16.vfb"
    vfb_path.write_bytes(b"old")
    vfb_path.with_suffix(".json").write_text(json.dumps({"static_seconds": 1.0,
                                                          "source": "0" * 16}))
    built: list[str] = []
    monkeypatch.setattr("vfpga.models.export_model", lambda name: f"onnx:{name}")
    monkeypatch.setattr("vfpga.frontend.pipeline.load_qgraph",
                        lambda model, num_random: (f"graph:{model}", None))
    monkeypatch.setattr("vfpga.driver.compile_graph",
                        lambda g, hw, cores: SimpleNamespace(vfb=f"vfb:{g}:{cores}"))
    monkeypatch.setattr(models, "write_vfb",
                        lambda path, vfb: (built.append(vfb), path.write_bytes(b"new")))
    monkeypatch.setattr(models, "read_vfb", lambda path, hw: f"read:{path.read_bytes()!r}")

    first = models.compiled_model("tiny", "pool16", cache=tmp_path)
    assert built == ["vfb:graph:onnx:tiny:16"] and first.vfb == "vfb:graph:onnx:tiny:16"
    meta = json.loads(vfb_path.with_suffix(".json").read_text())
    assert meta["source"] == source_digest()
    again = models.compiled_model("tiny", "pool16", cache=tmp_path)
    assert len(built) == 1 and again.vfb == "read:b'new'"
