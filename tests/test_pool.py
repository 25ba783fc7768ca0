"""The multi-tenant resource pool: deploy, infer, resize (context switch at a layer
boundary), leave, and isolation from a corrupt, a faulting and an overloaded tenant."""

from __future__ import annotations

import numpy as np
import pytest
from qgraph_builders import small_net

from vfpga.backend.binary import to_bytes
from vfpga.driver import compile_graph
from vfpga.errors import BinaryFormatError
from vfpga.hw.config import load_hw
from vfpga.isa.spec import Opcode
from vfpga.runtime.pool import PoolError, ResourcePool

HW = load_hw("pool16")


def compiled(seed: int, size: int = 16) -> bytes:
    return to_bytes(compile_graph(small_net(seed=seed, size=size), HW, cores=4).vfb)


def corrupt(blob: bytes) -> bytes:
    b = bytearray(blob)
    b[len(b) // 2] ^= 0x5A
    return bytes(b)


def faulting(blob: bytes) -> bytes:
    """The binary with every LOAD reading far outside the tenant's region (valid
    checksum: the fault happens at run time)."""
    from vfpga.backend.binary import from_bytes

    vfb = from_bytes(blob, "x", HW)
    text = bytearray(vfb.text)
    ops = np.frombuffer(bytes(text), np.uint8)[::64]
    for i in np.flatnonzero(ops == int(Opcode.LOAD)).tolist():
        text[i * 64 + 8: i * 64 + 12] = (0x7FFF0000).to_bytes(4, "little")
    from dataclasses import replace

    return to_bytes(replace(vfb, text=bytes(text)))


def make_input(blob: bytes, seed: int) -> np.ndarray:
    from vfpga.backend.binary import from_bytes

    vfb = from_bytes(blob, "x", HW)
    t = next(t for t in vfb.tensors if t.role == "input")
    return np.random.default_rng(seed).integers(-128, 128, t.shape, dtype=np.int8)


def solo(blob: bytes, x: np.ndarray, cores: int = 1) -> dict[str, bytes]:
    pool = ResourcePool(HW)
    t = pool.create_tenant("solo", cores)
    t.deploy(blob)
    return {k: v.tobytes() for k, v in t.infer(x).items()}


@pytest.fixture(scope="module")
def blobs() -> list[bytes]:
    return [compiled(s) for s in (1, 2)]


def test_deploy_infer_resize_leave(blobs: list[bytes]) -> None:
    pool = ResourcePool(HW)
    a = pool.create_tenant("a", 4)
    b = pool.create_tenant("b", 8)
    assert not set(a.cores) & set(b.cores)
    assert {c // 4 for c in a.cores} == {0} or len({c // 4 for c in a.cores}) == 1  # one bank
    a.deploy(blobs[0])
    b.deploy(blobs[1])
    xa, xb = make_input(blobs[0], 0), make_input(blobs[1], 1)
    want_a, want_b = solo(blobs[0], xa), solo(blobs[1], xb)
    ra = a.submit(xa)
    rb = b.submit(xb)
    pool.step()
    pool.step()
    rc = a.resize(2)  # mid-request: switch at the layer boundary
    assert rc.at_layer is not None and len(a.cores) == 2
    rc2 = b.resize(12)
    assert rc2.at_layer is not None and len(b.cores) == 12
    pool.run_until_idle()
    assert ra.status == rb.status == "done"
    assert ra.switches == 1 and rb.switches == 1
    assert {k: v.tobytes() for k, v in ra.outputs.items()} == want_a
    assert {k: v.tobytes() for k, v in rb.outputs.items()} == want_b
    assert ra.cycles and ra.cycles > 0
    assert rc.total_seconds >= rc.compile_seconds > 0
    # idle resize, then another request on the new cores
    a.resize(4)
    assert {k: v.tobytes() for k, v in a.infer(xa).items()} == want_a
    b.leave()
    assert len(pool.free_cores()) == HW.num_cores - 4
    with pytest.raises(PoolError, match="has left"):
        b.resize(2)
    assert b.submit(xb).status == "rejected"


def test_isolation_from_bad_tenants(blobs: list[bytes]) -> None:
    pool = ResourcePool(HW)
    good = pool.create_tenant("good", 4)
    bad = pool.create_tenant("bad", 4)
    busy = pool.create_tenant("busy", 4, max_queue=2)
    good.deploy(blobs[0])
    with pytest.raises(BinaryFormatError):
        bad.deploy(corrupt(blobs[1]))
    assert bad.vfb is None
    bad.deploy(faulting(blobs[1]))
    busy.deploy(blobs[1])
    x0, x1 = make_input(blobs[0], 5), make_input(blobs[1], 6)
    rg = [good.submit(x0) for _ in range(2)]
    rbad = bad.submit(x1)
    rbusy = [busy.submit(x1) for _ in range(4)]
    pool.run_until_idle()
    assert rbad.status == "failed" and "region" in (rbad.error or ""), rbad.error
    assert [r.status for r in rbusy] == ["done", "done", "rejected", "rejected"]
    want = solo(blobs[0], x0)
    for r in rg:
        assert r.status == "done"
        assert {k: v.tobytes() for k, v in r.outputs.items()} == want
    assert {k: v.tobytes() for k, v in rbusy[0].outputs.items()} == solo(blobs[1], x1)


def test_errors() -> None:
    pool = ResourcePool(HW)
    pool.create_tenant("a", 10)
    with pytest.raises(PoolError, match="only 6 free"):
        pool.create_tenant("b", 7)
    with pytest.raises(PoolError, match="already exists"):
        pool.create_tenant("a", 1)
    t = pool.create_tenant("c", [12])
    with pytest.raises(PoolError, match="not distinct free"):
        pool.create_tenant("d", [12, 13])
    assert t.submit(np.zeros(3, np.int8)).status == "rejected"
