"""The emulator from the user's side: sample programs, multi-core equivalence, faults,
tenant isolation."""

from __future__ import annotations

import isa_reference as ref
import numpy as np
import pytest
from emu_helpers import image_of, run_image

from vfpga.emulator import Accelerator
from vfpga.emulator.faults import (
    BufferOverflowFault,
    DeadlockFault,
    DependencyViolation,
)
from vfpga.examples import conv_samples as cs
from vfpga.hw import load_hw
from vfpga.isa.spec import Dep, Opcode


@pytest.fixture(scope="module")
def hw():
    return load_hw("pool16")


def expected_conv(x: np.ndarray) -> np.ndarray:
    """The conv layer computed by the independent reference of tests/isa_reference.py."""
    w, params = cs.constants()
    return ref.conv(
        x[0], w, start=params["bias"], stride=(1, 1), pads=(1, 1, 1, 1), pad_value=cs.IN_ZP,
        groups=1, acc_out=False, scale=params["scale"], divisor=params["divisor"],
        out_zp=cs.OUT_ZP, act=1, act_lo=cs.OUT_ZP, act_hi=127,
    )


def run_sample(hw, sample, cores, x):
    acc = Accelerator(hw)
    t = run_image(acc, sample.name, image_of(sample), cores, x)
    res = acc.run([t], raise_on_fault=True)[sample.name]
    return t, res


@pytest.mark.parametrize("name", ["conv_1core", "conv_split_oc", "conv_split_w"])
def test_conv_samples_match_reference(hw, name):
    x = cs.sample_input()
    t, res = run_sample(hw, cs.SAMPLES[name](), [0, 1, 2, 3], x)
    assert res.ok and res.last_finished_layer == 0
    out = t.read_tensor("conv")[0]
    np.testing.assert_array_equal(out, expected_conv(x))
    # the output is not degenerate: many distinct values, not all clamped
    assert len(np.unique(out)) > 50


def test_splits_equal_one_core_on_other_physical_cores(hw):
    x = cs.sample_input(11)
    base, _ = run_sample(hw, cs.conv_1core(), [9], x)
    for name, cores in (("conv_split_oc", [12, 3, 7, 0]), ("conv_split_w", [15, 14, 13, 12])):
        t, res = run_sample(hw, cs.SAMPLES[name](), cores, x)
        assert res.ok
        assert t.read_tensor("conv").tobytes() == base.read_tensor("conv").tobytes()
        assert sum(c.macs for c in res.counters.values()) == cs.H * cs.W * cs.COUT * 9 * cs.CIN


def test_counters_and_two_layer_demo(hw):
    x = cs.sample_input()
    t, res = run_sample(hw, cs.demo_2layer(), [0, 1, 2, 3], x)
    assert res.ok and res.barriers == 2 and res.last_finished_layer == 1
    conv = expected_conv(x)
    pooled = conv.reshape(8, 2, 8, 2, cs.COUT).max(axis=(1, 3))
    np.testing.assert_array_equal(t.read_tensor("pool")[0], pooled)
    for c in res.counters.values():
        assert c.insns["LOAD"] == 4 and c.insns["CONV"] == 1 and c.insns["POOL"] == 1
        assert c.insns["SYNC"] == 2 and c.insns["END"] == 1
        assert c.save_bytes == cs.H * cs.W * 8 + 8 * 2 * cs.COUT


def _mutate(sample, pred, **changes):
    for item in sample.body:
        for ins in getattr(item, "insns", [item]):
            if pred(ins):
                ins.fields.update(changes)
                return sample
    raise AssertionError("no instruction matched")


def test_out_of_region_faults_only_that_tenant(hw):
    x = cs.sample_input()
    solo, _ = run_sample(hw, cs.conv_split_oc(), [4, 5, 6, 7], x)
    bad = _mutate(cs.conv_split_w(), lambda i: i.op is Opcode.LOAD and i.fields.get("n0") == cs.H,
                  ddr=cs.DDR_SIZE - 64)
    acc = Accelerator(hw)
    tb = run_image(acc, "bad", image_of(bad), [0, 1, 2, 3], x)
    tg = run_image(acc, "good", image_of(cs.conv_split_oc()), [4, 5, 6, 7], x)
    res = acc.run()
    assert not res["bad"].ok
    assert "outside the task's region" in res["bad"].error
    assert "instruction #2 LOAD" in res["bad"].error and "task 'bad'" in res["bad"].error
    assert res["good"].ok
    assert tg.read_tensor("conv").tobytes() == solo.read_tensor("conv").tobytes()
    # the faulting tenant never wrote outside its own region
    assert tb.region.base != tg.region.base


def test_buffer_overflow(hw):
    s = _mutate(cs.conv_1core(), lambda i: i.op is Opcode.CONV, out_addr=hw.buffers["obuf"] - 100)
    with pytest.raises(BufferOverflowFault, match=r"obuf\[0x[0-9a-f]+, 0x[0-9a-f]+\) is past"):
        run_sample(hw, s, [0], cs.sample_input())


def test_missing_sync_is_a_deadlock(hw):
    s = cs.conv_split_oc()
    s.body = [b for b in s.body if not (getattr(b, "op", None) is Opcode.SYNC
                                        and b.fields["core"] == 2)]
    with pytest.raises(DeadlockFault, match=r"core 2 \(END #\d+\).*missing SYNC"):
        run_sample(hw, s, [0, 1, 2, 3], cs.sample_input())


def test_token_never_sent_is_a_deadlock(hw):
    s = _mutate(cs.conv_1core(), lambda i: i.op is Opcode.SAVE, deps=Dep.WAIT_PREV | Dep.WAIT_PREV)
    s = _mutate(s, lambda i: i.op is Opcode.CONV, deps=Dep.WAIT_PREV)
    with pytest.raises(DeadlockFault, match=r"SAVE \(layer 0\) waits for a token from CALC"):
        run_sample(hw, s, [0], cs.sample_input())


def test_missing_token_is_a_dependency_violation(hw):
    # CONV no longer waits for the input LOAD: reading ibuf is a read-after-write hazard,
    # even though the emulator happens to run the LOAD first.
    s = cs.conv_split_w()
    for item in s.body:
        for ins in getattr(item, "insns", []):
            if ins.op is Opcode.LOAD:
                ins.fields["deps"] = 0
            if ins.op is Opcode.CONV:
                ins.fields["deps"] = Dep.SIGNAL_NEXT
    with pytest.raises(DependencyViolation, match=r"read-after-write hazard on ibuf"):
        run_sample(hw, s, [0, 1, 2, 3], cs.sample_input())


def test_double_buffer_reuse_without_token_is_war_violation(hw):
    # the second input LOAD overwrites the first tile's ibuf bytes while CONV may still read
    s = cs.conv_1core()
    loads = [i for i in s.body[0].insns if i.op is Opcode.LOAD and i.fields["to"] == 0]
    loads[1].fields["buf"] = loads[0].fields["buf"]
    with pytest.raises(DependencyViolation, match=r"-after-(read|write) hazard on ibuf"):
        run_sample(hw, s, [0], cs.sample_input())


@pytest.mark.parametrize("fast", [True, False])
def test_conv_act_table_matches_reference(hw, fast):
    """act=table: the CONV maps each saturated value y to the int8 table entry y + 128,
    read from the 256 pbuf bytes after the parameter records (docs/isa.md)."""
    from dataclasses import replace

    from vfpga.examples.conv_samples import Insn
    from vfpga.isa.spec import PARAM_RECORD_BYTES, Act, Buffer

    table = np.random.default_rng(5).integers(-128, 128, 256).astype(np.int8)
    s = cs.conv_1core()
    ifp = s.body[0]
    p_end = cs.COUT * PARAM_RECORD_BYTES
    ins = [Insn(i.op, dict(i.fields, act=Act.TABLE, act_lo=0, act_hi=0))
           if i.op is Opcode.CONV else i for i in ifp.insns]
    ins.insert(2, Insn(Opcode.LOAD, dict(to=Buffer.PBUF, ddr=cs.P_OFF + p_end, buf=p_end,
                                         n0=1, n1=1, n2=256)))
    ifp.insns = ins
    data = bytearray(s.data)
    at = cs.P_OFF + p_end - cs.W_OFF
    data[at : at + 256] = table.view(np.uint8).tobytes()
    s = replace(s, data=bytes(data))
    x = cs.sample_input(3)
    acc = Accelerator(hw, fast=fast)
    t = run_image(acc, "tab", image_of(s), [0], x)
    res = acc.run([t], raise_on_fault=True)["tab"]
    assert res.ok
    w, params = cs.constants()
    want = ref.conv(
        x[0], w, start=params["bias"], stride=(1, 1), pads=(1, 1, 1, 1), pad_value=cs.IN_ZP,
        groups=1, acc_out=False, scale=params["scale"], divisor=params["divisor"],
        out_zp=cs.OUT_ZP, act=Act.TABLE, act_lo=0, act_hi=0, table=table,
    )
    np.testing.assert_array_equal(t.read_tensor("conv")[0], want)
