"""The options several commands share: one calibration-options declaration (compile,
check, import, quantize: same names, defaults, errors) and `vfpga import`'s elision of
large constants."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli_compile import invoke, tiny_model

COMMANDS = ("compile", "check", "import", "quantize")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("opt") / "tiny.onnx")


def _help(cmd: str) -> str:
    return " ".join(invoke(cmd, "--help").output.split())


def test_calibration_options_are_one_declaration() -> None:
    texts = {cmd: _help(cmd) for cmd in COMMANDS}
    for cmd, text in texts.items():
        assert "--calib-random N Quantize an fp32 model by calibrating on N seeded " \
               "random-normal inputs (the default, N = 16; valid random ids for an int64 " \
               "token-id input)." in text, cmd
        assert "--seed INTEGER Seed of the random calibration inputs. [default: 0]" in text
        assert "--calib-dir DIRECTORY" in text


@pytest.mark.parametrize("cmd", COMMANDS)
def test_calibration_errors_are_the_same(cmd: str, tiny: Path, tmp_path: Path) -> None:
    out = ["-o", str(tmp_path / "o")] if cmd != "check" else []
    r = invoke(cmd, str(tiny), *out, "--calib-dir", str(tmp_path), "--calib-random", "3")
    assert r.exit_code == 2
    assert "error: give either --calib-dir or --calib-random, not both" in r.output
    r = invoke(cmd, str(tiny), *out, "--calib-dir", str(tmp_path / "none"))
    assert r.exit_code == 2 and "calibration directory does not exist" in r.output
    r = invoke(cmd, str(tiny), *out, "--calib-random", "0")
    assert r.exit_code == 2 and "0 is not in the range x>=1" in r.output
    assert not (tmp_path / "o").exists()


def test_import_elides_large_constants_on_request(tiny: Path, tmp_path: Path) -> None:
    full = invoke("import", str(tiny), "--calib-random", "2")
    assert full.exit_code == 0 and "<elided" not in full.output  # not a terminal
    short = invoke("import", str(tiny), "--calib-random", "2", "--elide")
    assert short.exit_code == 0
    assert '"<elided 216 bytes>"' in short.output  # conv1: 8x3x3x3 int8 weights
    assert len(short.output) < len(full.output)
    out = tmp_path / "m.mlir"
    r = invoke("import", str(tiny), "--calib-random", "2", "--elide", "-o", str(out))
    assert r.exit_code == 0 and "<elided" not in out.read_text()  # files are complete
    assert out.read_text() == full.output
    bad = tmp_path / "short.mlir"
    bad.write_text(short.output)
    r = invoke("compile", str(bad), "-o", str(tmp_path / "x.vfb"))
    assert r.exit_code == 2 and "vfpga import --no-elide" in r.output
