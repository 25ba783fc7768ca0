"""Issue-2 acceptance from the command line: hw show, run, demo, faults and bad binaries
exit non-zero with one clear message and no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vfpga.cli.main import cli
from vfpga.examples.conv_samples import examples_dir, sample_input

SAMPLES = sorted(examples_dir().glob("*.s"))


def invoke(*args: str):
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert "Traceback" not in res.output
    return res


@pytest.fixture(scope="module")
def binaries(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("vfb")
    out = {}
    for s in SAMPLES:
        p = d / (s.stem + ".vfb")
        assert invoke("asm", str(s), "-o", str(p)).exit_code == 0
        out[s.stem] = p
    return out


def test_hw_show_pool16():
    res = invoke("hw", "show", "pool16")
    assert res.exit_code == 0
    assert "│ cores              │ 16" in res.output
    assert "512 (4 pixels x 8 in-ch x 8 out-ch MACs)" in res.output
    assert "│ cores per bank     │ 4" in res.output
    d = json.loads(invoke("hw", "show", "pool16", "--json").output)
    assert d["num_cores"] == 16 and d["ops_per_cycle"] == 512 and d["cores_per_bank"] == 4
    large = json.loads(invoke("hw", "show", "large1", "--json").output)
    assert large["num_cores"] == 1 and large["ops_per_cycle"] == 8192


def test_hw_show_unknown_preset():
    res = invoke("hw", "show", "pool99")
    assert res.exit_code != 0 and "unknown hardware 'pool99'" in res.output


def test_bundled_samples_exist():
    assert {s.stem for s in SAMPLES} >= {"conv_1core", "conv_split_oc", "conv_split_w",
                                         "demo_2layer"}


def test_run_splits_equal_one_core(binaries, tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, sample_input(5).transpose(0, 3, 1, 2))  # int8 inputs are given NCHW
    outs = {}
    for name, cores in (("conv_1core", "7"), ("conv_split_oc", "4-7"),
                        ("conv_split_w", "15,0,9,3")):
        o = tmp_path / f"{name}.npy"
        res = invoke("run", str(binaries[name]), "--input", str(x), "--cores", cores, "-o",
                     str(o))
        assert res.exit_code == 0, res.output
        outs[name] = np.load(o)
    assert outs["conv_1core"].shape == (1, 32, 16, 16)  # written NCHW
    assert outs["conv_split_oc"].tobytes() == outs["conv_1core"].tobytes()
    assert outs["conv_split_w"].tobytes() == outs["conv_1core"].tobytes()


def test_run_fault_exits_nonzero_naming_instruction(tmp_path):
    src = (examples_dir() / "conv_split_w.s").read_text()
    bad = src.replace("to=ibuf ddr=48 ", "to=ibuf ddr=24000 ", 1)
    assert bad != src
    s = tmp_path / "bad.s"
    s.write_text(bad)
    vfb = tmp_path / "bad.vfb"
    assert invoke("asm", str(s), "-o", str(vfb)).exit_code == 0
    res = invoke("run", str(vfb), "--cores", "0-3", "-o", str(tmp_path / "y.npy"))
    assert res.exit_code != 0
    assert "instruction #7 LOAD (layer 0)" in res.output
    assert "outside the task's region" in res.output
    assert not (tmp_path / "y.npy").exists()


def test_corrupt_binaries(binaries, tmp_path):
    data = bytearray(binaries["demo_2layer"].read_bytes())
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01
    (tmp_path / "flip.vfb").write_bytes(bytes(flipped))
    res = invoke("run", str(tmp_path / "flip.vfb"))
    assert res.exit_code != 0 and "checksum" in res.output and "flip.vfb" in res.output
    (tmp_path / "trunc.vfb").write_bytes(bytes(data[: len(data) - 100]))
    res = invoke("run", str(tmp_path / "trunc.vfb"))
    assert res.exit_code != 0 and "truncated" in res.output and "trunc.vfb" in res.output
    res = invoke("run", str(binaries["demo_2layer"]), "--hw", "large1")
    assert res.exit_code != 0 and "pool16" in res.output
    res = invoke("run", str(tmp_path / "missing.vfb"))
    assert res.exit_code != 0 and "no such file" in res.output


def test_run_too_few_cores(binaries):
    res = invoke("run", str(binaries["conv_split_oc"]), "--cores", "2")
    assert res.exit_code != 0 and "uses 4 cores but the task holds 2" in res.output


@pytest.mark.parametrize("spec", ["0-99", "a-b", "3,3", "0"])
def test_bad_core_sets(binaries, spec):
    res = invoke("run", str(binaries["conv_1core"]), "--cores", spec)
    assert res.exit_code != 0 and "--cores" in res.output


def test_demo():
    res = invoke("demo")
    assert res.exit_code == 0, res.output
    assert "4-core output == 1-core output, byte for byte" in res.output
