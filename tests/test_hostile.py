"""Hostile binaries next to honest tenants (issue 12, cases 1-4 and 9): a failed deploy
changes nothing, any error of a tenant's program fails that request alone, DDR is granted
by quota, every instruction's work is bounded at load, requests have a wall-time budget,
the pool checks dependency hazards, and the reader rejects what the format forbids."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from hostile_seeds import (
    HW,
    parse,
    patch_insns,
    patch_record,
    random_input,
    rebuild,
    reseal,
    seed_binaries,
)

from vfpga.backend.binary import TRAILER_BYTES, HostOp, SectionKind, from_bytes, read_header
from vfpga.emulator import Accelerator
from vfpga.errors import BinaryFormatError, VfpgaError
from vfpga.isa.spec import Dep, Opcode
from vfpga.runtime.pool import PoolError, ResourcePool


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    return seed_binaries()


def solo(blob: bytes, seed: int) -> dict[str, bytes]:
    pool = ResourcePool(HW)
    t = pool.create_tenant("solo", 2)
    t.deploy(blob)
    return {k: v.tobytes() for k, v in t.infer(random_input(blob, seed)).items()}


def outputs(req: object) -> dict[str, bytes]:
    return {k: v.tobytes() for k, v in req.outputs.items()}  # type: ignore[attr-defined]


# ------------------------------------------------------------------- case 1
def test_failed_redeploy_keeps_binary_and_region(seeds: dict[str, bytes]) -> None:
    """Case 1: a valid binary whose DDR does not fit deployed over a running tenant
    raises and changes nothing; the next tenant does not get the old tenant's region."""
    a_bin, c_bin = seeds["net12"], seeds["net16"]
    pool = ResourcePool(HW, ddr_bytes=64 << 10)
    a = pool.create_tenant("a", 2)
    a.deploy(a_bin)
    pool.create_tenant("b", 2).deploy(c_bin)
    base, vfb = a.task.region.base, a.vfb  # type: ignore[union-attr]
    big = rebuild(a_bin, ddr_size=60 << 10)  # valid, but does not fit the free DDR
    with pytest.raises(VfpgaError, match="DDR exhausted"):
        a.deploy(big)
    assert a.vfb is vfb and a.task.region.base == base  # type: ignore[union-attr]
    c = pool.create_tenant("c", 2)
    c.deploy(c_bin)
    assert c.task.region.base != base  # type: ignore[union-attr]
    ra, rc = a.submit(random_input(a_bin, 1)), c.submit(random_input(c_bin, 2))
    pool.run_until_idle()
    assert ra.status == rc.status == "done"
    assert outputs(ra) == solo(a_bin, 1) and outputs(rc) == solo(c_bin, 2)


def test_failed_deploy_that_freed_the_region_restores_it(seeds: dict[str, bytes]) -> None:
    """A redeploy that needs the tenant's own region (it is freed to make room) and then
    fails at load puts the old region back, bytes and all."""
    blob = seeds["net12"]
    pool = ResourcePool(HW, ddr_bytes=16 << 10)
    a = pool.create_tenant("a", 2)
    a.deploy(blob)
    before = a.task.region.mem.copy()  # type: ignore[union-attr]
    bomb = patch_insns(rebuild(blob, ddr_size=14 << 10), Opcode.SAVE, n0=65535, n1=65535)
    with pytest.raises(BinaryFormatError, match="SAVE"):
        a.deploy(bomb)
    assert np.array_equal(a.task.region.mem, before)  # type: ignore[union-attr]
    assert outputs_of(a, blob, 3) == solo(blob, 3)


def outputs_of(t: object, blob: bytes, seed: int) -> dict[str, bytes]:
    return {k: v.tobytes() for k, v in t.infer(random_input(blob, seed)).items()}  # type: ignore[attr-defined]


# ------------------------------------------------------------------- case 2
def _tensor_index(blob: bytes, role: str) -> int:
    return next(i for i, t in enumerate(parse(blob).tensors) if t.role == role)


def hostile_variants(seeds: dict[str, bytes]) -> dict[str, bytes]:
    """The binaries of case 2 (each accepted by the reader before this issue)."""
    h = seeds["hostops"]
    vfb = parse(h)
    soft = next(i for i, o in enumerate(vfb.host_ops) if o.op_type == "Softmax")
    lrn = next(i for i, o in enumerate(vfb.host_ops) if o.op_type == "LRN")

    def host(i: int, **kw: object) -> bytes:
        ops = list(vfb.host_ops)
        o = ops[i]
        ops[i] = HostOp(kw.get("name", o.name), kw.get("op_type", o.op_type),  # type: ignore[arg-type]
                        o.after_layer, kw.get("inputs", o.inputs),  # type: ignore[arg-type]
                        kw.get("outputs", o.outputs), kw.get("attrs", o.attrs))  # type: ignore[arg-type]
        return rebuild(h, host_ops=ops)

    out = _tensor_index(h, "output")
    return {
        "tensor shape vs size": patch_record(h, SectionKind.TENSORS, out, "shape", [1, 9, 9, 9]),
        "tensor dtype vs size": patch_record(h, SectionKind.TENSORS, out, "dtype", 2),
        "softmax axis": host(soft, attrs={"axis": 7}),
        "lrn without size": host(lrn, attrs={"alpha": 1e-3, "beta": 0.75, "bias": 1.0}),
        "mistyped attr": host(lrn, attrs={"size": "five"}),
        "float attr as list": host(lrn, attrs={"size": 5, "alpha": [1]}),
        "no inputs": host(soft, inputs=()),
        "no outputs": host(soft, outputs=()),
        "unknown type": host(soft, op_type="Gelu"),
    }


def test_hostile_binaries_fail_alone(seeds: dict[str, bytes]) -> None:
    """Case 2: every such binary is refused with a vfpga error at deploy (never another
    exception type), and the honest tenant's request completes with its exact bytes."""
    honest = seeds["net12"]
    want = solo(honest, 5)
    for what, blob in hostile_variants(seeds).items():
        pool = ResourcePool(HW)
        good = pool.create_tenant("good", 2)
        good.deploy(honest)
        bad = pool.create_tenant("bad", 2)
        with pytest.raises(VfpgaError) as info:
            bad.deploy(blob)
        assert "Traceback" not in str(info.value), what
        r = good.submit(random_input(honest, 5))
        pool.run_until_idle()
        assert r.status == "done" and outputs(r) == want, what


def test_host_op_failing_at_run_time_fails_that_request(seeds: dict[str, bytes],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A host op that raises (any type) while running fails its request (never ``done``);
    the pool keeps stepping and the honest tenant is unaffected."""
    import vfpga.emulator.host_ops as host_ops

    honest, h = seeds["net16"], seeds["hostops"]
    want = solo(honest, 6)

    def boom(*args: object) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(host_ops, "run_host", boom)
    pool = ResourcePool(HW)
    good, bad = pool.create_tenant("good", 2), pool.create_tenant("bad", 2)
    good.deploy(honest)
    bad.deploy(h)
    rb = bad.submit(random_input(h, 1))
    rg = good.submit(random_input(honest, 6))
    for _ in range(200):
        if not pool.step():
            break
    assert rb.status == "failed" and "ZeroDivisionError: boom" in (rb.error or "")
    assert "host op" in (rb.error or "")
    assert rg.status == "done" and outputs(rg) == want
    # the accelerator alone: the faulting task is reported, the other task completes
    acc = Accelerator(HW)
    ta, tb = acc.create_task("a", [0, 1], 1 << 16), acc.create_task("b", [2, 3], 1 << 16)
    ta.load(parse(honest))
    tb.load(parse(h))
    res = acc.run()
    assert res["a"].ok and not res["b"].ok and "ZeroDivisionError" in (res["b"].error or "")


def test_any_error_in_a_step_fails_only_that_request(seeds: dict[str, bytes],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An unforeseen error type (here MemoryError from the tenant's instructions) fails
    its request; the pool never raises and never wedges."""
    from vfpga.emulator.machine import Task

    honest, other = seeds["net12"], seeds["net16"]
    real = Task._step

    def step(self: Task) -> None:
        if self.name.startswith("bad"):
            raise MemoryError("no room")
        real(self)

    monkeypatch.setattr(Task, "_step", step)
    pool = ResourcePool(HW)
    good, bad = pool.create_tenant("good", 2), pool.create_tenant("bad", 2)
    good.deploy(honest)
    bad.deploy(other)
    rb, rg = bad.submit(random_input(other, 0)), good.submit(random_input(honest, 0))
    pool.run_until_idle()
    assert rb.status == "failed" and "MemoryError" in (rb.error or "")
    assert rg.status == "done" and outputs(rg) == solo(honest, 0)


# ------------------------------------------------------------------- case 3
def test_ddr_is_granted_by_quota(seeds: dict[str, bytes]) -> None:
    blob = rebuild(seeds["net12"], ddr_size=4 << 30)
    pool = ResourcePool(HW)
    t = pool.create_tenant("t", 2)
    t0 = time.perf_counter()
    with pytest.raises(PoolError, match="quota"):
        t.deploy(blob)
    assert time.perf_counter() - t0 < 5
    small = pool.create_tenant("s", 2, ddr_quota=4096)
    with pytest.raises(PoolError, match="quota of 4,096"):
        small.deploy(seeds["net12"])


def test_instruction_work_is_bounded_at_load(seeds: dict[str, bytes]) -> None:
    """One CONV whose weights and output fit the buffers but whose work is 8.4e9 MACs
    (the 19 s, 8 GB instruction of the issue) is rejected at deploy, at once."""
    blob = patch_insns(seeds["net12"], Opcode.CONV, in_h=1, in_w=1, in_c=2, out_c=1,
                       groups=1, kh=255, kw=255, pad_t=254, pad_b=254, pad_l=254, pad_r=254,
                       stride_h=1, stride_w=1, flags=0)
    pool = ResourcePool(HW)
    t = pool.create_tenant("t", 2)
    t0 = time.perf_counter()
    with pytest.raises(BinaryFormatError, match="multiply-accumulate count"):
        t.deploy(blob)
    assert time.perf_counter() - t0 < 5
    assert t.vfb is None
    big = patch_insns(seeds["net12"], Opcode.LOAD, n0=60000, n1=60000)
    with pytest.raises(BinaryFormatError, match="padded box"):
        t.deploy(big)


def test_request_wall_time_budget(seeds: dict[str, bytes]) -> None:
    honest = seeds["net12"]
    pool = ResourcePool(HW, request_seconds=0.0)
    t = pool.create_tenant("t", 2)
    t.deploy(honest)
    r = t.submit(random_input(honest, 0))
    pool.run_until_idle()
    assert r.status == "failed" and "wall-time budget" in (r.error or "")
    pool.request_seconds = 60.0
    r = t.submit(random_input(honest, 0))
    pool.run_until_idle()
    assert r.status == "done" and outputs(r) == solo(honest, 0)


# ------------------------------------------------------------------- case 4
def test_pool_reports_dependency_hazards(seeds: dict[str, bytes]) -> None:
    """A racy program (its CALC instructions no longer wait for the LOADs) fails with a
    dependency violation in the pool instead of ending ``done``."""
    honest = seeds["net12"]
    vfb = parse(honest)
    conv = vfb.program.by_op[Opcode.CONV]
    racy = patch_insns(honest, Opcode.CONV,
                       deps=conv["deps"] & ~np.uint8(Dep.WAIT_PREV | Dep.WAIT_NEXT))
    pool = ResourcePool(HW)
    t = pool.create_tenant("t", 2)
    t.deploy(racy)
    r = t.submit(random_input(racy, 0))
    pool.run_until_idle()
    assert r.status == "failed"
    assert "hazard" in (r.error or "") or "deadlock" in (r.error or ""), r.error


# ------------------------------------------------------------------- case 9
def _body_patch(blob: bytes, at: int, value: bytes) -> bytes:
    body = bytearray(blob[:-TRAILER_BYTES])
    body[at : at + len(value)] = value
    return reseal(body)


def test_reader_rejects_what_the_format_forbids(seeds: dict[str, bytes]) -> None:
    blob = seeds["net12"]
    hdr = read_header(blob, "x")
    spans = sorted((s.offset, s.offset + s.size) for s in hdr.sections.values())
    gap = next(e for (_, e), (s2, _) in itertools.pairwise(spans) if s2 > e)
    with pytest.raises(BinaryFormatError, match=f"padding byte {gap} .* is not zero"):
        from_bytes(_body_patch(blob, gap, b"\x01"), "x", HW)
    # a gap before the trailer: grow the file, keep the sections where they are
    body = bytearray(blob[:-TRAILER_BYTES]) + bytes(64)
    body[64:72] = (len(body) + TRAILER_BYTES).to_bytes(8, "little")
    with pytest.raises(BinaryFormatError, match="64 bytes between the end of the last section"):
        from_bytes(reseal(body), "x", HW)
    with pytest.raises(BinaryFormatError, match="uses 4,294,967,295 bytes of ibuf"):
        from_bytes(patch_record(blob, SectionKind.IFPS, 0, "ibuf", 0xFFFFFFFF), "x", HW)
    renamed = _body_patch(blob, 48, b"large1\0\0\0\0\0\0\0\0\0\0")
    with pytest.raises(BinaryFormatError, match=r"hardware name 'large1' .* disagrees"):
        from_bytes(renamed, "x", HW)


def test_core_without_end_is_named() -> None:
    """Case 9: a core whose stream has no END is reported at load, naming the core and
    its last instruction (it was "instruction #-1")."""
    from vfpga.backend.asm import assemble

    src = (".hw pool16\n.program ddr_size=4096 data_offset=0 cores=2\n.layer l kind=conv macs=0\n"
           "  end core=0 layer=0 deps=-\n"
           "  sync core=1 layer=0 deps=-\n")
    vfb = assemble(src, "noend.s")
    task = Accelerator(HW).create_task("t", [0, 1], 4096)
    with pytest.raises(BinaryFormatError, match="logical core 1 has no END instruction after "
                       "its last SYNC") as info:
        task.load(vfb)
    assert "#-1" not in str(info.value)
    src = src.replace("  sync core=1 layer=0 deps=-\n", "  sync core=2 layer=0 deps=-\n  "
                      "end core=2 layer=0 deps=-\n").replace("cores=2", "cores=3")
    task = Accelerator(HW).create_task("t", [0, 1, 2], 4096)
    with pytest.raises(BinaryFormatError, match="logical core 1 has no instructions, not even END"):
        task.load(assemble(src, "gap.s"))
