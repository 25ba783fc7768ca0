"""The emulator's precompiled-plan fast path (vfpga.emulator.plan) against the reference
interpreter (``Accelerator(fast=False)``): identical DDR bytes, counters and faults."""

from __future__ import annotations

import numpy as np
import pytest
from emu_helpers import image_of, run_image

from vfpga.emulator import Accelerator
from vfpga.emulator.core import Core
from vfpga.emulator.faults import ExecutionFault
from vfpga.emulator.plan import SegmentPlan, calc_accesses
from vfpga.examples import conv_samples as cs
from vfpga.hw import load_hw
from vfpga.isa.spec import MODULE_OF, Dep, Module, Opcode, PoolMode

HW = load_hw("pool16")


def _run(sample: cs.SampleProgram, cores: list[int], *, fast: bool, hazards: bool = True,
         runs: int = 1):
    """Run ``sample`` ``runs`` times on a fresh accelerator; return what can be compared:
    the region's bytes, the result fields and the task."""
    acc = Accelerator(HW, fast=fast, check_hazards=hazards)
    t = run_image(acc, sample.name, image_of(sample), cores, cs.sample_input())
    for _ in range(runs):
        t.restart()
        t.write_tensor("input", cs.sample_input())
        res = acc.run([t])[t.name]
    counters = {c: (dict(k.insns), k.macs, k.load_bytes, k.save_bytes)
                for c, k in res.counters.items()}
    return (t.region.mem.tobytes(), res.ok, res.error, res.last_finished_layer, res.barriers,
            counters), t


def _same(sample: cs.SampleProgram, cores: list[int], hazards: bool = True, runs: int = 1):
    slow, _ = _run(sample, cores, fast=False, hazards=hazards, runs=runs)
    fast, t = _run(sample, cores, fast=True, hazards=hazards, runs=runs)
    assert fast[1:] == slow[1:]
    assert fast[0] == slow[0]
    return fast, t


def _mutate(sample, pred, **changes):
    for item in sample.body:
        for ins in getattr(item, "insns", [item]):
            if pred(ins):
                ins.fields.update(changes)
                return sample
    raise AssertionError("no instruction matched")


@pytest.mark.parametrize("name,cores", [("conv_1core", [5]), ("conv_split_oc", [3, 0, 9, 1]),
                                        ("conv_split_w", [0, 1, 2, 3]),
                                        ("demo_2layer", [15, 2, 7, 4])])
@pytest.mark.parametrize("hazards", [True, False])
def test_plan_matches_interpreter(name, cores, hazards):
    (_, ok, err, *_), t = _same(cs.SAMPLES[name](), cores, hazards, runs=2)
    assert ok and err is None
    # the fast path really ran from plans (none of them fell back to the interpreter)
    assert t.loaded.plans and all(p is not None for _, p in t.loaded.plans.values())
    assert all(isinstance(p, SegmentPlan) for _, p in t.loaded.plans.values())


def _no_dep_conv():
    s = cs.conv_split_w()
    for item in s.body:
        for ins in getattr(item, "insns", []):
            if ins.op is Opcode.LOAD:
                ins.fields["deps"] = 0
            if ins.op is Opcode.CONV:
                ins.fields["deps"] = Dep.SIGNAL_NEXT
    return s


def _war_reuse():
    s = cs.conv_1core()
    loads = [i for i in s.body[0].insns if i.op is Opcode.LOAD and i.fields["to"] == 0]
    loads[1].fields["buf"] = loads[0].fields["buf"]
    return s


def _missing_sync():
    s = cs.conv_split_oc()
    s.body = [b for b in s.body if not (getattr(b, "op", None) is Opcode.SYNC
                                        and b.fields["core"] == 2)]
    return s


def _token_never_sent():
    s = _mutate(cs.conv_1core(), lambda i: i.op is Opcode.SAVE, deps=Dep.WAIT_PREV)
    return _mutate(s, lambda i: i.op is Opcode.CONV, deps=Dep.WAIT_PREV)


def _pool_kernel_fault():
    # a data path fault raised by the CALC method itself, in the middle of a plan
    return _mutate(cs.demo_2layer(), lambda i: i.op is Opcode.POOL, mode=PoolMode.GLOBAL_AVG)


def _pool_nan():
    # a data-dependent fault of a compiled POOL step: an average of infinite terms of both
    # signs (the conv outputs on both sides of in_zp), after the pool's own LOAD ran
    return _mutate(cs.demo_2layer(), lambda i: i.op is Opcode.POOL, mode=PoolMode.AVG,
                   scale=3e38, out_scale=1.0, in_zp=cs.OUT_ZP + 3)


FAULTS = {
    "out_of_region": (lambda: _mutate(
        cs.conv_split_w(), lambda i: i.op is Opcode.LOAD and i.fields.get("n0") == cs.H,
        ddr=cs.DDR_SIZE - 64), [0, 1, 2, 3], "outside the task's region"),
    "obuf_overflow": (lambda: _mutate(cs.conv_1core(), lambda i: i.op is Opcode.CONV,
                                      out_addr=HW.buffers["obuf"] - 100), [0], "is past"),
    "missing_sync": (_missing_sync, [0, 1, 2, 3], "missing SYNC"),
    "token_never_sent": (_token_never_sent, [0], "waits for a token from CALC"),
    "raw_hazard": (_no_dep_conv, [0, 1, 2, 3], "read-after-write hazard on ibuf"),
    "war_hazard": (_war_reuse, [0], "-after-"),
    "pool_kernel": (_pool_kernel_fault, [0, 1, 2, 3], "CONV|POOL"),
    "pool_nan": (_pool_nan, [0, 1, 2, 3], "average pooling sum is NaN"),
}


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_faults_identical(name):
    build, cores, needle = FAULTS[name]
    (_, ok, err, *_), _t = _same(build(), cores)
    assert not ok and err is not None
    assert needle in err or any(n in err for n in needle.split("|"))


@pytest.mark.parametrize("mode,pads", [(PoolMode.AVG, (1, 0, 0, 1)),
                                       (PoolMode.AVG_PAD, (0, 1, 1, 0)),
                                       (PoolMode.MAX, (1, 1, 1, 1))])
def test_compiled_pool_steps_match_interpreter(mode, pads):
    """POOL steps prepared at build time (compiled kernels) give the interpreter's bytes."""
    avg = {} if mode is PoolMode.MAX else dict(scale=0.37, out_scale=0.5, in_zp=-3, out_zp=2)
    sample = _mutate(cs.demo_2layer(), lambda i: i.op is Opcode.POOL, mode=mode,
                     pad_t=pads[0], pad_b=pads[1], pad_l=pads[2], pad_r=pads[3], **avg)
    for item in sample.body:  # the SAVE of the (larger) padded output
        for ins in getattr(item, "insns", []):
            if ins.op is Opcode.SAVE and ins.fields["ddr"] >= cs.POOL_OFF:
                ins.fields["n0"] = (cs.H + pads[0] + pads[1]) // 2
                ins.fields["n1"] = (ins.fields["n1"] * 2 + pads[2] + pads[3]) // 2
    (_, ok, err, *_), _t = _same(sample, [15, 2, 7, 4])
    assert ok, err


@pytest.mark.parametrize("name", ["raw_hazard", "war_hazard"])
def test_racy_programs_without_hazard_checks_run_in_interpreter_order(name):
    build, cores, _ = FAULTS[name]
    (_, ok, err, *_), _t = _same(build(), cores, hazards=False)
    assert ok, err


def test_calc_accesses_mirror_the_core_methods(monkeypatch):
    """Every on-chip access the interpreter's CONV/POOL/ELTWISE make is, in order, the one
    :func:`calc_accesses` predicts (the plans' hazard analysis relies on it)."""
    seen: list[tuple[int, object, int, int, bool]] = []
    orig = Core._access

    def record(self, ctx, i, m, buf, addr, nbytes, write):
        if m is Module.CALC:
            seen.append((i, buf, addr, nbytes, write))
        return orig(self, ctx, i, m, buf, addr, nbytes, write)

    monkeypatch.setattr(Core, "_access", record)
    for name in ("conv_1core", "conv_split_w", "demo_2layer"):
        seen.clear()
        _, t = _run(cs.SAMPLES[name](), [0, 1, 2, 3], fast=False)
        prog, fields = t.loaded.program, t.loaded.fields
        calc = [i for i in range(len(prog)) if Opcode(int(prog.opcode[i])) in MODULE_OF
                and MODULE_OF[Opcode(int(prog.opcode[i]))] is Module.CALC]
        assert calc
        want = [(i, b, a, n, w) for i in calc for b, a, n, _al, w in calc_accesses(fields[i])]
        assert sorted(seen, key=lambda r: r[0]) == want


def test_uncovered_access_is_reported(monkeypatch):
    """A CALC access the static analysis did not cover is an internal error, not a
    silently unchecked access."""
    import vfpga.emulator.plan as plan_mod

    real = plan_mod.calc_accesses
    monkeypatch.setattr(plan_mod, "calc_accesses", lambda f: real(f)[1:])
    acc = Accelerator(HW)
    t = run_image(acc, "x", image_of(cs.conv_1core()), [0], cs.sample_input())
    with pytest.raises(ExecutionFault, match="not covered by the static hazard analysis"):
        acc.run([t], raise_on_fault=True)


def test_plans_are_rebuilt_for_other_entry_tokens():
    """A segment entered with different token counts (a token left over by the previous
    epoch) gets its own plan: the same bytes as the interpreter either way."""
    s = cs.demo_2layer()
    # core 0's last CONV also signals LOAD; that token crosses the barrier and lets a
    # LOAD of the next epoch that waits for CALC start at once.
    for item in s.body:
        if getattr(item, "layer", None) == 0 and getattr(item, "core", None) == 0:
            conv = [i for i in item.insns if i.op is Opcode.CONV][-1]
            conv.fields["deps"] |= Dep.SIGNAL_PREV
        if getattr(item, "layer", None) == 1 and getattr(item, "core", None) == 0:
            first = next(i for i in item.insns if i.op is Opcode.LOAD)
            first.fields["deps"] |= Dep.WAIT_NEXT
    (_, ok, err, *_), t = _same(s, [0, 1, 2, 3], runs=2)
    assert ok, err
    assert np.unique([k[-1] for k in t.loaded.plans], axis=0).shape[0] >= 2
