"""Soak test of the resource pool: 500 random tenant events (arrive, deploy, infer,
resize, leave), including a tenant with a corrupt binary and one whose binary faults;
every completed inference is byte-identical to a solo run and no request is lost."""

from __future__ import annotations

import numpy as np
import pytest
from test_pool import HW, compiled, corrupt, faulting, make_input

from vfpga.backend.binary import from_bytes
from vfpga.errors import BinaryFormatError
from vfpga.runtime.pool import PoolError, ResourcePool


@pytest.mark.slow
def test_soak_500_events() -> None:
    rng = np.random.default_rng(2024)
    good = [compiled(s, size=12) for s in (11, 12, 13)]
    bad_corrupt = corrupt(good[0])
    bad_fault = faulting(good[1])
    solo_cache: dict[tuple[int, int], dict[str, bytes]] = {}

    def expected(b: int, seed: int) -> dict[str, bytes]:
        if (b, seed) not in solo_cache:
            p = ResourcePool(HW)
            t = p.create_tenant("solo", 1)
            t.deploy(good[b])
            solo_cache[(b, seed)] = {k: v.tobytes() for k, v in
                                     t.infer(make_input(good[b], seed)).items()}
        return solo_cache[(b, seed)]

    pool = ResourcePool(HW)
    binary_of: dict[str, int] = {}  # tenant -> index into good, -1 faulting
    submitted: list[tuple[object, int, int]] = []  # (request, binary, input seed)
    counts = dict.fromkeys(("arrive", "deploy", "infer", "resize", "leave", "step",
                            "corrupt", "fault"), 0)
    names = iter(f"t{i}" for i in range(10_000))
    for _ in range(500):
        ev = rng.choice(["arrive", "deploy", "infer", "infer", "infer", "resize", "leave",
                         "step", "step", "step"])
        tenants = list(pool.tenants.values())
        if ev == "arrive" or not tenants:
            free = len(pool.free_cores())
            if free == 0:
                continue
            t = pool.create_tenant(next(names), int(rng.integers(1, min(free, 6) + 1)),
                                   max_queue=4)
            counts["arrive"] += 1
            if rng.random() < 0.8:  # most tenants deploy on arrival
                b = int(rng.integers(3))
                t.deploy(good[b])
                binary_of[t.name] = b
            continue
        t = tenants[int(rng.integers(len(tenants)))]
        if ev == "deploy":
            if t.current is not None:
                continue
            kind = rng.integers(7)
            if kind >= 5:
                kind = rng.integers(3)
            if kind == 3:
                with pytest.raises(BinaryFormatError):
                    t.deploy(bad_corrupt)
                counts["corrupt"] += 1
            elif kind == 4:
                t.deploy(bad_fault)
                binary_of[t.name] = -1
                counts["fault"] += 1
            else:
                t.deploy(good[int(kind)])
                binary_of[t.name] = int(kind)
            counts["deploy"] += 1
        elif ev == "infer":
            seed = int(rng.integers(4))
            b = binary_of.get(t.name)
            src = good[b] if b is not None and b >= 0 else good[1]
            submitted.append((t.submit(make_input(src, seed)), b if b is not None else -2,
                              seed))
            counts["infer"] += 1
        elif ev == "resize":
            n = int(rng.integers(1, 7))
            try:
                t.resize(n)
                counts["resize"] += 1
            except PoolError:
                pass
        elif ev == "leave":
            t.leave()
            counts["leave"] += 1
        else:
            for _ in range(8):
                pool.step()
            counts["step"] += 1
    pool.run_until_idle()
    assert all(v > 0 for v in counts.values()), counts
    statuses: dict[str, int] = {}
    switched = 0
    for req, b, seed in submitted:
        statuses[req.status] = statuses.get(req.status, 0) + 1  # type: ignore[attr-defined]
        assert req.status in ("done", "failed", "rejected"), req  # nothing lost
        if req.status == "done":
            assert b >= 0
            got = {k: v.tobytes() for k, v in req.outputs.items()}  # type: ignore[attr-defined]
            assert got == expected(b, seed)
            switched += req.switches  # type: ignore[attr-defined]
        elif req.status == "failed":
            assert b == -1 or req.error in ("the tenant left",  # type: ignore[attr-defined]
                                            "the tenant deployed another binary"), req
    assert statuses.get("done", 0) > 50, statuses
    assert statuses.get("failed", 0) > 0 and switched > 0, (statuses, switched)
    assert len(pool.requests) == len(submitted)


def test_churn_soak_ddr_exhaustion_and_hostile_binaries() -> None:
    """Issue 12: 500 pool events on a DDR so small that redeploys exhaust it (a failed
    deploy must change nothing), with hostile binaries (resealed structural mutations,
    racy code, host ops that fail their checks) mixed in next to honest tenants: every
    completed request's bytes equal a solo run, every request ends (done, failed or
    rejected), and the pool never raises."""
    from binary_mutations import Mutator
    from hostile_seeds import patch_insns, random_input, rebuild, seed_binaries

    from vfpga.errors import VfpgaError
    from vfpga.isa.spec import Dep, Opcode

    seeds = seed_binaries()
    good = [seeds["net12"], seeds["net16"], seeds["hostops"]]
    conv = from_bytes(good[0], "x", HW).program.by_op[Opcode.CONV]
    racy = patch_insns(good[0], Opcode.CONV,
                       deps=conv["deps"] & ~np.uint8(Dep.WAIT_PREV | Dep.WAIT_NEXT))
    greedy = rebuild(good[1], ddr_size=200 << 10)  # valid, but larger than the free DDR
    mutators = [Mutator(b) for b in good]
    rng = np.random.default_rng(12)
    solo: dict[tuple[int, int], dict[str, bytes]] = {}

    def expected(b: int, seed: int) -> dict[str, bytes]:
        if (b, seed) not in solo:
            p = ResourcePool(HW)
            t = p.create_tenant("solo", 2)
            t.deploy(good[b])
            solo[(b, seed)] = {k: v.tobytes() for k, v in
                               t.infer(random_input(good[b], seed)).items()}
        return solo[(b, seed)]

    pool = ResourcePool(HW, ddr_bytes=256 << 10)
    binary_of: dict[str, int] = {}  # tenant -> index into good, -1 hostile
    submitted: list[tuple[object, int, int]] = []
    counts = dict.fromkeys(("arrive", "deploy", "refused", "hostile", "infer", "resize",
                            "leave", "step"), 0)
    names = iter(f"t{i}" for i in range(10_000))
    for _ in range(500):
        ev = rng.choice(["arrive", "deploy", "deploy", "infer", "infer", "infer", "resize",
                         "leave", "step", "step"])
        tenants = list(pool.tenants.values())
        if ev == "arrive" or not tenants:
            free = len(pool.free_cores())
            if free:
                t = pool.create_tenant(next(names), int(rng.integers(1, min(free, 4) + 1)),
                                       max_queue=4)
                counts["arrive"] += 1
                b = int(rng.integers(3))
                if rng.random() < 0.8:  # most tenants deploy on arrival (if DDR allows)
                    try:
                        t.deploy(good[b])
                        binary_of[t.name] = b
                    except VfpgaError:
                        assert t.vfb is None and t.task is None
                        counts["refused"] += 1
            continue
        t = tenants[int(rng.integers(len(tenants)))]
        if ev == "deploy":
            if t.current is not None:
                continue
            kind = int(rng.integers(6))
            before = (t.vfb, None if t.task is None else t.task.region.base)
            blob = (good[kind] if kind < 3 else greedy if kind == 3 else racy if kind == 4
                    else mutators[int(rng.integers(3))].mutate(rng)[1])
            try:
                t.deploy(blob)
            except VfpgaError:
                after = (t.vfb, None if t.task is None else t.task.region.base)
                assert after == before  # a failed deploy changes nothing
                counts["refused"] += 1
                continue
            binary_of[t.name] = kind if kind < 3 else -1
            counts["hostile" if kind >= 3 else "deploy"] += 1
        elif ev == "infer":
            b = binary_of.get(t.name)
            seed = int(rng.integers(3))
            x = random_input(good[b] if b is not None and b >= 0 else good[0], seed)
            if b is not None and b < 0 and t.vfb is not None:
                x = {n.name: np.zeros(n.shape, np.int8) for n in t.vfb.tensors
                     if n.role == "input" and np.prod(n.shape) < 1 << 20}
            submitted.append((t.submit(x), b if b is not None else -2, seed))
            counts["infer"] += 1
        elif ev == "resize":
            try:
                t.resize(int(rng.integers(1, 5)))
                counts["resize"] += 1
            except PoolError:
                pass
        elif ev == "leave":
            t.leave()
            counts["leave"] += 1
        else:
            for _ in range(8):
                pool.step()
            counts["step"] += 1
    pool.run_until_idle()
    assert all(v > 0 for v in counts.values()), counts
    wrong = lost = 0
    for req, b, seed in submitted:
        if req.status not in ("done", "failed", "rejected"):  # type: ignore[attr-defined]
            lost += 1
        elif req.status == "done" and b >= 0:  # type: ignore[attr-defined]
            got = {k: v.tobytes() for k, v in req.outputs.items()}  # type: ignore[attr-defined]
            wrong += got != expected(b, seed)
    statuses = {s: sum(r.status == s for r, _, _ in submitted)  # type: ignore[attr-defined]
                for s in ("done", "failed", "rejected")}
    print(f"churn soak: events {counts}, requests {statuses}, wrong {wrong}, lost {lost}")
    assert (wrong, lost) == (0, 0), (wrong, lost, counts)
    assert statuses["done"] > 20 and statuses["failed"] > 0, statuses
    assert len(pool.requests) == len(submitted)
