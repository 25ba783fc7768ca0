"""Units of `vfpga serve`: the one NCHW <-> stored tensor conversion, bearer tokens, the
repository's validation (every bad file named with its key), and the state database."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
from serve_util import HW, blob, corrupt, put_model

from vfpga.backend.binary import Tensor
from vfpga.emulator.tensor_layout import from_stored, to_stored, user_shape
from vfpga.errors import VfpgaError
from vfpga.serve.auth import OPERATOR, bearer, hash_token, identify
from vfpga.serve.repository import RepositoryError, read_model, read_tenants, tenant_spec
from vfpga.serve.scheduler import Outcome
from vfpga.serve.state import State


@pytest.mark.parametrize("c", [1, 3, 16, 17, 64])
def test_tensor_layout_round_trip(c: int) -> None:
    t = Tensor("x", "input", "int8", "nhwc", (1, 5, 7, c), 0, 5 * 7 * c)
    assert user_shape(t) == (1, c, 5, 7)
    x = np.random.default_rng(c).integers(-128, 128, (1, c, 5, 7), dtype=np.int8)
    s = to_stored(t, x)
    assert s.shape == (1, 5, 7, c) and s.flags.c_contiguous
    assert np.array_equal(s, x.transpose(0, 2, 3, 1))
    o = Tensor("y", "output", "int8", "nhwc", (1, 5, 7, c), 0, 5 * 7 * c)
    assert np.array_equal(from_stored(o, s), x)
    with pytest.raises(ValueError, match="'x' has shape"):
        to_stored(t, x.transpose(0, 2, 3, 1))


def test_output_map_of_one_pixel_is_n_by_c() -> None:
    o = Tensor("y", "output", "int8", "nhwc", (1, 1, 1, 10), 0, 10)
    assert user_shape(o) == (1, 10)
    q = np.arange(10, dtype=np.int8).reshape(1, 1, 1, 10)
    assert from_stored(o, q).shape == (1, 10)
    flat = Tensor("z", "output", "float32", "flat", (1, 10), 0, 40)
    assert user_shape(flat) == (1, 10)


def test_tokens() -> None:
    pairs = [("alice", hash_token("a")), ("bob", hash_token("b"))]
    op = hash_token("op")
    assert identify("a", op, pairs) == "alice"
    assert identify("b", op, pairs) == "bob"
    assert identify("op", op, pairs) == OPERATOR
    assert identify("c", op, pairs) is None
    assert identify(None, op, pairs) is None
    assert identify("op", None, pairs) is None
    assert bearer("Bearer xyz") == "xyz" and bearer("bearer  xyz ") == "xyz"
    assert bearer("Basic xyz") is None and bearer("Bearer ") is None and bearer(None) is None
    assert bearer("Bearer " + "x" * 5000) is None


def test_tenants_toml_errors_name_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    tok = hash_token("t")
    cases = {
        "[tenants.a]\ncores = 2\n": "token_sha256",
        f'[tenants.a]\ncores = 0\ntoken_sha256 = "{tok}"\n': "'cores'",
        f'[tenants.a]\ncores = 2\ntoken_sha256 = "{tok}"\ncolour = 1\n': "colour",
        f'[tenants."../x"]\ncores = 2\ntoken_sha256 = "{tok}"\n': "valid name",
        f'[tenants.a]\ncores = 2\ntoken_sha256 = "{tok}"\nddr_mib = -1\n': "ddr_mib",
        f'[tenants.a]\ncores = 9\ntoken_sha256 = "{tok}"\n'
        f'[tenants.b]\ncores = 9\ntoken_sha256 = "{hash_token("u")}"\n': "ask for 18 cores",
        "[tenants.a\n": "not valid TOML",
        "x = 1\n": "unknown top-level",
        f'[tenants.a]\ncores = 2\ntoken_sha256 = "{tok}"\n'
        f'[tenants.b]\ncores = 2\ntoken_sha256 = "{tok}"\n': "same token_sha256",
    }
    for text, words in cases.items():
        path.write_text(text)
        with pytest.raises(RepositoryError, match=r"tenants\.toml") as err:
            read_tenants(tmp_path, 16)
        assert words in str(err.value), text
    path.write_text(f'[tenants.a]\ncores = 2\ntoken_sha256 = "{tok}"\nlatency_target_ms = 5\n')
    (spec,) = read_tenants(tmp_path, 16)
    assert spec.latency_target_ms == 5.0 and spec.max_queue == 16


def test_model_errors(tmp_path: Path) -> None:
    tenants = {"a": tenant_spec("a", {"cores": 2, "token_sha256": hash_token("t")}, "x", 16)}
    with pytest.raises(RepositoryError, match="no such model"):
        read_model(tmp_path, "m", HW, tenants)
    put_model(tmp_path, "m", "a", corrupt(blob(1)))
    with pytest.raises(VfpgaError, match=r"model\.vfb"):
        read_model(tmp_path, "m", HW, tenants)
    (tmp_path / "m" / "config.toml").write_text('tenant = "a"\n[compile]\nfoo = 1\n')
    with pytest.raises(RepositoryError, match="foo"):
        read_model(tmp_path, "m", HW, tenants)
    (tmp_path / "m" / "config.toml").write_text('tenant = "a"\n')
    (tmp_path / "m" / "1" / "model.vfb").unlink()
    with pytest.raises(RepositoryError, match="no version folder"):
        read_model(tmp_path, "m", HW, tenants)
    put_model(tmp_path, "m", "a", blob(1), version="3")
    put_model(tmp_path, "m", "a", blob(2), version="12")
    m = read_model(tmp_path, "m", HW, tenants)
    assert sorted(m.versions) == ["12", "3"] and m.latest == "12"
    small = {
        "a": tenant_spec(
            "a", {"cores": 2, "token_sha256": hash_token("t"), "ddr_mib": 0.1}, "x", 16
        )
    }
    put_model(tmp_path, "big", "a", blob(7, 96))  # 0.2 MiB of DDR
    with pytest.raises(RepositoryError, match=r"quota is 0\.1 MiB"):
        read_model(tmp_path, "big", HW, small)


def test_compile_options(tmp_path: Path) -> None:
    from vfpga.serve.repository import compile_options

    cfg = tmp_path / "m" / "config.toml"
    (tmp_path / "m" / "calib").mkdir(parents=True)
    ok = compile_options(
        {"cores": 4, "seed": 0, "calib_dir": "calib", "input_shape": {"x": [1, 3, 8, 8]}},
        cfg,
        tmp_path / "m",
        HW,
    )
    assert ok["calib_dir"] == (tmp_path / "m" / "calib").resolve()
    assert ok["input_shape"] == {"x": (1, 3, 8, 8)}
    bad = {
        "calib_dir": ({"calib_dir": "../.."}, "inside"),
        "calib_dir type": ({"calib_dir": 3}, "inside"),
        "shape": ({"input_shape": {"x": [1, 0]}}, "input_shape"),
        "shape type": ({"input_shape": [1, 3]}, "input_shape"),
        "cores": ({"cores": 17}, "cores must be 1..16"),
        "cores type": ({"cores": "4"}, "positive integer"),
        "both": ({"calib_dir": "calib", "calib_random": 4}, "not both"),
    }
    for what, (opts, words) in bad.items():
        with pytest.raises(RepositoryError, match="config") as err:
            compile_options(opts, cfg, tmp_path / "m", HW)
        assert words in str(err.value), what


def test_state_round_trip(tmp_path: Path) -> None:
    st = State(tmp_path)
    assert not st.initialized("fp")
    spec = tenant_spec("a", {"cores": 2, "token_sha256": hash_token("t")}, "x", 16)
    st.put_tenant(spec, [4, 5])
    st.put_model("m", "a", {"s1": b"one"}, {"1": "s1"}, {"k": b"c"})
    st.mark_initialized("fp")
    st.close()
    st = State(tmp_path)
    assert st.initialized("fp")
    with pytest.raises(ValueError, match="another hardware"):
        st.initialized("other")
    assert st.tenants() == [(spec, [4, 5])]
    assert st.models() == [("m", "a", {"1": "s1"})]
    assert st.binary("s1") == b"one" and st.compile_cache() == {"k": b"c"}
    st.set_cores("a", [6])
    assert st.tenants()[0][1] == [6]
    st.remove_tenant("a")
    assert st.tenants() == [] and st.models() == [] and st.binary("s1") is None
    st.close()


def test_a_request_arriving_mid_run_starts_at_the_next_layer(tmp_path: Path) -> None:
    """A request running alone runs layer after layer on the pool's thread; a request of
    another tenant arriving meanwhile still starts at the next layer boundary (round
    robin), not after the running request ends."""
    from serve_util import user_input, write_repo

    from vfpga.backend.binary import from_bytes
    from vfpga.runtime.pool import Tenant
    from vfpga.serve.app import Server

    repo = write_repo(
        tmp_path / "repo", {"alice": 2, "bob": 2}, {"a": ("alice", blob(1)), "b": ("bob", blob(2))}
    )
    server = Server(repo, tmp_path / "state", HW, "fixed", None, 20.0)
    server.open()
    sch = server.scheduler
    sch.start()
    try:

        def stored(data: bytes, seed: int) -> dict[str, np.ndarray]:
            t_in = next(t for t in from_bytes(data, "x", HW).tensors if t.role == "input")
            return {t_in.name: to_stored(t_in, user_input(data, seed))}

        sch.submit("alice", "a", "1", stored(blob(1), 0)).result(60)  # deployed, warm
        sch.submit("bob", "b", "1", stored(blob(2), 0)).result(60)
        layers = {"alice": 0}
        later: list[Future[Outcome]] = []
        step = Tenant.step

        def counting(t: Tenant) -> bool:
            if t.name == "alice":
                layers["alice"] += 1
                if layers["alice"] == 2:  # bob's request arrives while alice's runs
                    later.append(sch.submit("bob", "b", "1", stored(blob(2), 1)))
            return step(t)

        Tenant.step = counting  # type: ignore[method-assign]
        try:
            a = sch.submit("alice", "a", "1", stored(blob(1), 1)).result(60)
            b = later[0].result(60)
        finally:
            Tenant.step = step  # type: ignore[method-assign]
        b_started = b.finished - b.run_s
        assert b_started < a.finished, "bob's request waited for alice's to end"
        assert layers["alice"] > 3
    finally:
        sch.stop()
        server.state.close()
