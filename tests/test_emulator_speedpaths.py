"""The emulator's speed paths give exactly the checked path's bytes and faults: the
unchecked kernel entries (``kernels.conv_prepared``, ``eltwise_table``/``eltwise_lookup``)
against ``kernels.conv``/``eltwise_add``, and the plans' prepared CALC steps with weights,
parameter records and inputs shared between steps and kept between runs
(``vfpga.emulator.plan._Slot``) against the reference interpreter, also when DDR bytes are
rewritten between runs behind every API's back."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pytest
from emu_helpers import image_of, run_image

import vfpga.emulator.machine as machine_mod
import vfpga.emulator.plan as plan_mod
from vfpga.emulator import Accelerator, kernels
from vfpga.examples import conv_samples as cs
from vfpga.hw import load_hw
from vfpga.isa.spec import PARAM_RECORD_DTYPE, Act, Buffer, Dep, Opcode

HW = load_hw("pool16")


# --------------------------------------------------------------------------- kernels

#: (x shape, w shape, stride, pads, groups): every sums path of kernels.conv_geometry
GEOMETRIES = [
    ((6, 7, 4), (5, 3, 3, 4), (1, 1), (1, 1, 1, 1), 1),  # im2col (few channels)
    ((5, 40, 32), (8, 3, 3, 32), (1, 1), (1, 0, 1, 1), 1),  # wide rows
    ((7, 6, 6), (12, 3, 3, 1), (2, 1), (1, 1, 0, 2), 6),  # depthwise, multiplier 2
    ((4, 5, 8), (6, 1, 1, 4), (1, 2), (0, 0, 0, 0), 2),  # grouped 1x1
    ((3, 3, 1100), (4, 1, 1, 1100), (1, 1), (0, 0, 0, 0), 1),  # K > K_CHUNK (float64 sums)
    ((4, 36, 1030), (3, 2, 2, 1030), (1, 1), (0, 0, 0, 0), 1),  # wide rows, K > K_CHUNK
]


@pytest.mark.parametrize("use_int", [True, False], ids=["int8", "float"])
@pytest.mark.parametrize("geo_args", GEOMETRIES)
@pytest.mark.parametrize("mode", ["requant", "acc_out", "acc_in", "divisor"])
def test_conv_prepared_equals_conv(geo_args, mode: str, use_int: bool,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "_USE_INT_MATMUL", use_int)
    monkeypatch.setattr(kernels, "_USE_JIT_DEPTHWISE", use_int)
    xs, ws, stride, pads, groups = geo_args
    rng = np.random.default_rng(abs(hash((xs, mode))) % 2**32)
    x = rng.integers(-128, 128, xs, dtype=np.int8)
    w = rng.integers(-128, 128, ws, dtype=np.int8)
    geo = kernels.conv_geometry(x.shape, w.shape, stride=stride, pads=pads, pad_value=-3,
                                groups=groups)
    oc, oh, ow = ws[0], geo.oh, geo.ow
    # biases near the int32 limits make the accumulators wrap
    start = (rng.integers(-2**31, 2**31, (oh, ow, oc)) if mode == "acc_in"
             else rng.integers(-2**31, 2**31, oc)).astype(np.int32)
    rec = np.zeros(oc, PARAM_RECORD_DTYPE)
    rec["bias"] = rng.integers(-2**31, 2**31, oc)
    rec["scale"] = rng.uniform(1e-5, 1e-2, oc).astype(np.float32)
    rec["divisor"] = rng.uniform(0.3, 3.0, oc) if mode == "divisor" else 1.0
    acc_out = mode == "acc_out"
    bias, scale, divisor = kernels.conv_params(rec.view(np.uint8), oc, validate=not acc_out)
    assert (divisor is None) == (mode != "divisor")
    if mode != "acc_in":
        start = bias
    kw = dict(act=Act.RELU6, act_lo=-100, act_hi=90)
    want = kernels.conv(x, w, start=start, stride=stride, pads=pads, pad_value=-3,
                        groups=groups, acc_out=acc_out, scale=rec["scale"],
                        divisor=rec["divisor"], out_zp=7, **kw)
    got = kernels.conv_prepared(
        geo, kernels.conv_input(geo, x), kernels.conv_weights(geo, w), start, acc_out=acc_out,
        scale=scale, divisor=divisor, out_zp=0 if acc_out else 7,
        bounds=kernels.act_bounds(kw["act"], kw["act_lo"], kw["act_hi"]))
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    bounds = kernels.act_bounds(kw["act"], kw["act_lo"], kw["act_hi"])
    if geo.path == "int8-depthwise":  # the plans' entry reads the int8 tile in place
        wt = kernels.conv_weights(geo, w)
        for use_jit in (True, False):
            out = np.zeros(want.shape, want.dtype)
            prod = kernels.conv_sums(geo, kernels.conv_input(geo, x), wt)
            with monkeypatch.context() as m, np.errstate(over="ignore", under="ignore"):
                if not use_jit:  # the numpy output stage instead of the compiled one
                    m.setattr(kernels.jit, "get", lambda: None)
                kernels.conv_int8_finish(geo, prod, start, out, acc_out=acc_out, scale=scale,
                                         divisor=divisor, out_zp=0 if acc_out else 7,
                                         bounds=bounds)
            np.testing.assert_array_equal(out, want)
        out = np.zeros(want.shape, want.dtype)
        kernels.conv_int8_into(geo, x, wt, start, out, acc_out=acc_out, scale=scale,
                               divisor=divisor, out_zp=0 if acc_out else 7, bounds=bounds)
        np.testing.assert_array_equal(out, want)
        return
    if geo.path != "int8":
        assert not use_int or kernels.int_matmul.backend() is None or (
            groups > 1 and ws[3] == 1 and kernels.jit.get() is None)
        return
    # the plans' entry: im2col into reused buffers (also a strided column block) + into
    wt = kernels.conv_weights(geo, w)
    k = geo.kh * geo.kw * (geo.in_c // groups)
    block = np.zeros((geo.oh * geo.ow, k + 9), np.uint8)[:, 4:-5]  # strided rows
    targets = [None] if groups > 1 else [None, block]
    for target, use_jit in itertools.product(targets, (True, False)):
        im2col = kernels.Im2colU8(geo)
        im2col.target = target
        for _ in range(2):  # the second call reuses the buffers
            out = np.zeros(want.shape, want.dtype)
            with monkeypatch.context() as m, np.errstate(over="ignore", under="ignore"):
                if not use_jit:  # the numpy output stage instead of the compiled one
                    m.setattr(kernels.jit, "get", lambda: None)
                kernels.conv_int8_into(
                    geo, im2col(x), wt, start, out, acc_out=acc_out, scale=scale,
                    divisor=divisor, out_zp=0 if acc_out else 7,
                    bounds=kernels.act_bounds(kw["act"], kw["act_lo"], kw["act_hi"]))
            np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("field,value,needle", [
    ("scale", np.inf, "scale = inf"), ("divisor", np.nan, "divisor = nan"),
    ("divisor", 0.0, "divisor is 0")])
def test_conv_params_faults_like_conv(field: str, value: float, needle: str) -> None:
    rec = np.zeros(3, PARAM_RECORD_DTYPE)
    rec["scale"] = 1.0
    rec["divisor"] = 1.0
    rec[field][2] = value
    x = np.zeros((1, 1, 2), np.int8)
    w = np.zeros((3, 1, 1, 2), np.int8)
    with pytest.raises(ValueError) as checked:
        kernels.conv(x, w, start=rec["bias"].astype(np.int32), scale=rec["scale"],
                     divisor=rec["divisor"])
    with pytest.raises(ValueError) as prepared:
        kernels.conv_params(rec.view(np.uint8), 3)
    assert str(prepared.value) == str(checked.value) and needle in str(checked.value)
    kernels.conv_params(rec.view(np.uint8), 3, validate=False)  # acc_out: records unused


@pytest.mark.parametrize("n", [1, 2049, 70000])
def test_eltwise_lookup_equals_eltwise_add(n: int) -> None:
    rng = np.random.default_rng(n)
    for act, lo, hi in [(Act.NONE, -128, 127), (Act.RELU, -5, 127), (Act.RELU6, 0, 40)]:
        a = rng.integers(-128, 128, n, dtype=np.int8)
        b = rng.integers(-128, 128, n, dtype=np.int8)
        p = dict(scale_a=float(rng.uniform(0.2, 2)), scale_b=float(rng.uniform(0.2, 2)),
                 offset=float(rng.uniform(-100, 100)), act=act, act_lo=lo, act_hi=hi)
        out = np.empty(n, np.int8)
        kernels.eltwise_lookup(kernels.eltwise_table(**p), a, b, out)
        np.testing.assert_array_equal(out, kernels.eltwise_add(a, b, **p))
    with pytest.raises(ValueError, match="scale_b"):
        kernels.eltwise_table(scale_a=1.0, scale_b=float("inf"), offset=0.0)


# --------------------------------------------------------------------------- plans

Mutation = Callable[[np.ndarray], None]


def _flip_weights(mem: np.ndarray) -> None:
    mem[cs.W_OFF : cs.W_OFF + 300] ^= 0x5A  # raw DDR write: no API sees it


def _params(mem: np.ndarray) -> np.ndarray:
    return mem[cs.P_OFF : cs.P_OFF + cs.COUT * 12].view(PARAM_RECORD_DTYPE)


def _halve_scales(mem: np.ndarray) -> None:
    _params(mem)["scale"] *= np.float32(0.5)


def _nan_scale(mem: np.ndarray) -> None:
    _params(mem)["scale"][5] = np.nan


def _restore(mem: np.ndarray) -> None:
    data = np.frombuffer(cs.SAMPLES["conv_1core"]().data, np.uint8)
    mem[cs.W_OFF : cs.W_OFF + data.size] = data


def _runs(name: str, cores: list[int], mutations: list[Mutation | None], *, fast: bool,
          **acc_kw: object) -> list[tuple[bytes, bool, str | None]]:
    """Run sample ``name`` once per entry of ``mutations`` on one accelerator, applying
    the mutation to the task's DDR before the run; what each run left behind."""
    acc = Accelerator(HW, fast=fast, **acc_kw)  # type: ignore[arg-type]
    t = run_image(acc, name, image_of(cs.SAMPLES[name]()), cores, cs.sample_input())
    out = []
    for mut in mutations:
        t.restart()
        t.write_tensor("input", cs.sample_input())
        if mut is not None:
            mut(t.region.mem)
        res = acc.run([t])[t.name]
        out.append((t.region.mem.tobytes(), res.ok, res.error))
    return out


SEQUENCE: list[Mutation | None] = [None, None, _flip_weights, None, _halve_scales,
                                   _nan_scale, _restore, None]


@pytest.mark.parametrize("name,cores", [("conv_1core", [0]), ("conv_split_oc", [3, 0, 9, 1]),
                                        ("demo_2layer", [4, 5, 6, 7])])
@pytest.mark.parametrize("prepared_bytes", [0, 1 << 30])
def test_rewritten_ddr_between_runs(name: str, cores: list[int], prepared_bytes: int) -> None:
    """Weights and parameter records rewritten in DDR between runs (directly in the
    region's bytes) give the interpreter's results: kept values are never stale, and a
    NaN scale faults the same way (then recovers once the records are restored)."""
    slow = _runs(name, cores, SEQUENCE, fast=False)
    fast = _runs(name, cores, SEQUENCE, fast=True, prepared_bytes=prepared_bytes)
    assert [r[1:] for r in fast] == [r[1:] for r in slow]
    assert [r[0] for r in fast] == [r[0] for r in slow]
    oks = [r[1] for r in slow]
    assert oks == [True] * 5 + [False, True, True] and "scale = nan" in str(slow[5][2])
    assert slow[2][0] != slow[1][0] and slow[4][0] != slow[3][0]  # the mutations matter


def _count_weight_preps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = kernels.conv_weights

    def counted(geo: kernels.ConvGeometry, w: np.ndarray) -> np.ndarray:
        calls[0] += 1
        return real(geo, w)

    monkeypatch.setattr(plan_mod.kernels, "conv_weights", counted)
    # the cores' own plans (epoch plans, tests/test_emulator_epoch.py, prepare their own)
    monkeypatch.setattr(machine_mod, "build_epoch", lambda *a, **k: None)
    return calls


def test_weights_are_prepared_once_while_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    """conv_split_w's four cores each load the full weights once per run; the float32
    weights are made on the first run only, and again after the bytes change."""
    calls = _count_weight_preps(monkeypatch)
    acc = Accelerator(HW)
    t = run_image(acc, "w", image_of(cs.conv_split_w()), [0, 1, 2, 3], cs.sample_input())
    per_run = []
    for mut in (None, None, None, _flip_weights, None):
        before = calls[0]
        t.restart()
        t.write_tensor("input", cs.sample_input())
        if mut is not None:
            mut(t.region.mem)
        assert acc.run([t])[t.name].ok
        per_run.append(calls[0] - before)
    assert per_run[0] > 0
    assert per_run[1:3] == [0, 0]
    assert per_run[3] == per_run[0]  # every CONV step's weights were rebuilt
    assert per_run[4] == 0


def test_budget_bounds_kept_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no room for prepared weights they are made on every run (and dropped after
    it); the budget accounts for what the plans keep and gets it back when they go."""
    calls = _count_weight_preps(monkeypatch)
    acc = Accelerator(HW, prepared_bytes=0)
    t = run_image(acc, "w", image_of(cs.conv_1core()), [0], cs.sample_input())
    counts = []
    for _ in range(3):
        before = calls[0]
        t.restart()
        assert acc.run([t])[t.name].ok
        counts.append(calls[0] - before)
    assert counts[0] > 0 and counts == [counts[0]] * 3
    plans = [p for _, p in t.loaded.plans.values() if p is not None]
    assert plans and all(s.value is None for p in plans for s in p.transient)
    assert acc.prepared_budget.used == 0

    acc2 = Accelerator(HW)
    t2 = run_image(acc2, "w", image_of(cs.conv_1core()), [0], cs.sample_input())
    assert acc2.run([t2])[t2.name].ok
    w_bytes = cs.COUT * cs.K * cs.K * cs.CIN  # int8 weights (float32 ones are 4x that)
    assert acc2.prepared_budget.used >= w_bytes
    t2.loaded.plans.clear()
    t2.loaded.epochs.clear()  # an epoch on the cores' own plans holds them too
    import gc

    gc.collect()
    assert acc2.prepared_budget.used == 0


class _CountedBytes(np.ndarray):
    """A buffer view that counts its ``tobytes()`` calls (a kept value's comparison)."""

    calls: ClassVar[list[int]] = [0]

    def tobytes(self, order: str = "C") -> bytes:  # type: ignore[override]
        _CountedBytes.calls[0] += 1
        return super().tobytes(order)  # type: ignore[arg-type]


def _kept_slots(t) -> list[plan_mod._Slot]:  # type: ignore[no-untyped-def]
    """The kept (retained) weight and parameter slots of the task's per-core plans, their
    raw views made counting."""
    slots = []
    for _, p in t.loaded.plans.values():
        for st in (p.steps if p is not None else []):
            if isinstance(st, plan_mod._ConvStep):
                for sl in (st.w, st.p):
                    if sl.retain and sl not in slots:
                        sl.raw = sl.raw.view(_CountedBytes)
                        slots.append(sl)
    return slots


@pytest.mark.parametrize("name", ["conv_1core", "demo_2layer"])
def test_own_plan_unwritable_values_are_not_compared_again(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kept weights and parameter records of the cores' own plans whose bytes one LOAD
    copied from DDR that no SAVE and no tensor can write are compared with the buffer only
    after someone took the region's bytes (``Region.mem``), not on every run; the results
    stay the interpreter's."""
    monkeypatch.setattr(machine_mod, "build_epoch", lambda *a, **k: None)
    prog = cs.SAMPLES[name]()
    cores = [0] if name == "conv_1core" else [4, 5, 6, 7]
    want = _runs(name, cores, [None, None, None], fast=False)
    acc = Accelerator(HW)
    t = run_image(acc, "w", image_of(prog), cores, cs.sample_input())
    assert acc.run([t])[t.name].ok  # builds the plans
    slots = _kept_slots(t)
    assert slots and all(sl.fixed is t.region for sl in slots)
    _CountedBytes.calls[0] = 0
    got = []
    for _ in range(3):
        t.restart()
        t.write_tensor("input", cs.sample_input())
        assert acc.run([t])[t.name].ok
        got.append(t.region.view().tobytes())  # view(): not a hand-out
    assert _CountedBytes.calls[0] == 0  # nothing handed out: nothing compared
    assert got == [r[0] for r in want]
    t.region.mem  # noqa: B018 - the region's bytes handed out: compared again, once
    t.restart()
    assert acc.run([t])[t.name].ok
    assert _CountedBytes.calls[0] == len(slots)


def test_own_plan_values_a_save_can_reach_are_compared_every_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """If a SAVE of the program may write the weights' DDR bytes (a hostile binary), the
    cores' own plans compare their kept values on every run."""
    monkeypatch.setattr(machine_mod, "build_epoch", lambda *a, **k: None)
    monkeypatch.setattr(machine_mod, "save_extents", lambda *a: (
        np.array([0], np.int64), np.array([1 << 40], np.int64)))
    acc = Accelerator(HW)
    t = run_image(acc, "w", image_of(cs.conv_1core()), [0], cs.sample_input())
    assert acc.run([t])[t.name].ok  # builds the plans
    slots = _kept_slots(t)
    assert slots and not any(sl.fixed for sl in slots)
    _CountedBytes.calls[0] = 0
    for k in range(2):
        t.restart()
        assert acc.run([t])[t.name].ok
        assert _CountedBytes.calls[0] == (k + 1) * len(slots)


def _reloaded_ibuf() -> cs.SampleProgram:
    """conv_1core with both input tiles loaded to ibuf address 0 in turn: the second LOAD
    waits until the first CONV has read the first tile (it signals LOAD)."""
    s = cs.conv_1core()
    ins = s.body[0].insns  # type: ignore[union-attr]
    loads = [i for i in ins if i.op is Opcode.LOAD and i.fields["to"] == Buffer.IBUF]
    convs = [i for i in ins if i.op is Opcode.CONV]
    for ld in loads:
        ld.fields["buf"] = 0
        ld.fields["deps"] = Dep.WAIT_NEXT | Dep.SIGNAL_NEXT
    convs[0].fields["deps"] = Dep.WAIT_PREV | Dep.SIGNAL_PREV | Dep.SIGNAL_NEXT
    convs[1].fields["in_addr"] = 0
    return s


def test_reloaded_buffer_is_not_shared_within_a_run() -> None:
    """Two CONVs reading the same ibuf bytes with a LOAD in between see different
    inputs: the plan gives each its own padded input (and matches the interpreter)."""
    def run(fast: bool) -> tuple[bytes, object]:
        acc = Accelerator(HW, fast=fast)
        t = run_image(acc, "r", image_of(_reloaded_ibuf()), [2], cs.sample_input())
        res = acc.run([t])[t.name]
        assert res.ok, res.error
        return t.region.mem.tobytes(), t

    slow, _ = run(False)
    fast, t = run(True)
    assert fast == slow
    assert all(p is not None for _, p in t.loaded.plans.values())
