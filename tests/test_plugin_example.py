"""The out-of-tree plugin example (examples/pin-tiling): installed through its
``xdsl.universe`` entry point, its pass named in ``vfpga compile -p`` changes the binary
as intended, and ``vfpga check`` passes on the result.

"Installed": the test writes the distribution's metadata (its name and the entry points
read from the example's own pyproject.toml) into a temporary site folder and runs the
CLI in a subprocess with that folder and the example's source on PYTHONPATH. That is
what ``pip install -e examples/pin-tiling`` leaves behind, without the network or a
change to the test's virtualenv (docs/plugins.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from test_cli_compile import tiny_model

from vfpga.backend.binary import read_vfb

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "pin-tiling"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment in which the example is installed (see the module docstring)."""
    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    project = meta["project"]
    site = tmp_path_factory.mktemp("site")
    dist = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in entries.items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(site), str(EXAMPLE), *filter(None, [env.get("PYTHONPATH")])])
    env["OPENBLAS_NUM_THREADS"] = "1"
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / args[0]), *args[1:]], env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def _layer_ifps(path: Path, layer: str) -> list[tuple[int, int, int, int, int]]:
    """(candidate, w0, w1, c0, c1) of every IFP of ``layer`` in the binary."""
    vfb = read_vfb(path)
    li = [ly.name for ly in vfb.layers].index(layer)
    rec = vfb.ifps[vfb.ifps["layer"] == li]
    return [tuple(int(r[k]) for k in ("candidate", "w0", "w1", "c0", "c1")) for r in rec]


def test_plugin_pass_pins_the_tiling_and_checks(plugin_env: dict[str, str],
                                                tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "tiny.onnx")
    layer = "conv2"
    default = _run(plugin_env, "vfpga", "compile", "--print-pipeline", "--cores", "4").stdout
    spec = default.strip().replace(
        "ifp-package,", f'pin-tiling{{layers="{layer}" axis=c}},ifp-package,')
    assert "pin-tiling" in spec
    a, b = tmp_path / "a.vfb", tmp_path / "b.vfb"
    calib = ("--calib-random", "4")
    r = _run(plugin_env, "vfpga", "compile", str(model), "-o", str(a), "--cores", "4", *calib)
    assert r.returncode == 0, r.stderr
    r = _run(plugin_env, "vfpga", "compile", str(model), "-o", str(b), "-p", spec, *calib)
    assert r.returncode == 0, r.stderr

    before, after = _layer_ifps(a, layer), _layer_ifps(b, layer)
    width = max(w1 for _, _, w1, _, _ in before)
    assert any(w1 - w0 < width for _, w0, w1, _, _ in before)  # it had width splits
    assert after and all((w0, w1) == (0, width) for _, w0, w1, _, _ in after)
    assert any(c1 - c0 < 16 for *_, c0, c1 in after)  # only channel splits remain
    va, vb = read_vfb(a), read_vfb(b)
    assert [ly.name for ly in va.layers] == [ly.name for ly in vb.layers]
    other = [ly.name for ly in va.layers if ly.name != layer]
    assert all(_layer_ifps(a, n) == _layer_ifps(b, n) for n in other)

    chk = _run(plugin_env, "vfpga", "check", str(model), "-p", spec, *calib)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    assert "check passed" in chk.stdout

    # the pass is an xDSL plugin like any other: xdsl-opt lists it, and its errors are
    # one line naming the layer
    bad = spec.replace(f'"{layer}"', '"nope"')
    r = _run(plugin_env, "vfpga", "compile", str(model), "-o", str(tmp_path / "x.vfb"),
             "-p", bad, *calib)
    assert r.returncode == 2 and "'nope' is not an accelerator layer" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "x.vfb").exists()
    mlir = tmp_path / "m.mlir"
    assert _run(plugin_env, "vfpga", "import", str(model), "-o", str(mlir), *calib).returncode == 0
    r = _run(plugin_env, "xdsl-opt", str(mlir), "-p",
             f'dnn-plan-memory,dnn-tile,pin-tiling{{layers="{layer}" axis=w}}')
    assert r.returncode == 0, r.stderr
    text = r.stdout[r.stdout.index(f'"{layer}" conv out'):]
    text = text[:text.find("ifp.layer")]
    assert "ifp.candidate w" in text and "ifp.candidate c" not in text
    np.testing.assert_array_equal(va.data, vb.data)
