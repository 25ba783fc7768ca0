"""What ``vfpga check`` keeps in memory (issue 17): the emulated inference's accelerator,
task and prepared weights are freed when :func:`vfpga.flow.check_one` returns (no
reference cycle waits for the garbage collector), and ``ort_session`` builds its session
without a copy of the model, leaving the model as it was."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import numpy as np
import pytest
from test_cli_compile import tiny_model

from vfpga import flow
from vfpga.emulator import Accelerator
from vfpga.hw import load_hw
from vfpga.reference.compare import ort_session, random_inputs


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory):
    path = tiny_model(Path(tmp_path_factory.mktemp("m")) / "tiny.onnx")
    hw = load_hw("pool16")
    loaded, res = flow.compile_file(path, hw, 2, num_random=4)
    return loaded, res, hw


def test_check_one_frees_the_accelerator_without_the_garbage_collector(compiled, monkeypatch):
    loaded, res, hw = compiled
    made: list[weakref.ref[Accelerator]] = []
    budgets: list[int] = []
    init = Accelerator.__init__

    def spy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        init(self, *args, **kwargs)
        made.append(weakref.ref(self))
        budgets.append(self.prepared_budget.limit)

    monkeypatch.setattr(Accelerator, "__init__", spy)
    x = random_inputs(loaded.qdq, 1, seed=3)[0]
    gc.collect()
    gc.disable()
    try:
        rep = flow.check_one(res, hw, x)
        assert rep.ok
        assert len(made) == 1
        assert made[0]() is None, "the accelerator outlived check_one (a reference cycle?)"
    finally:
        gc.enable()
    assert budgets == [0]  # one inference: no prepared weights kept for a next run


def test_ort_session_leaves_the_model_unchanged(compiled):
    loaded, _res, _hw = compiled
    m = loaded.qdq
    before = m.SerializeToString()
    inner = next(
        n.output[0] for n in m.graph.node if n.output[0] not in {o.name for o in m.graph.output}
    )
    sess = ort_session(m, [inner])
    assert [o.name for o in sess.get_outputs()][-1] == inner
    assert m.SerializeToString() == before
    x = random_inputs(m, 1, seed=4)[0]
    outs = sess.run(None, {sess.get_inputs()[0].name: x})
    assert len(outs) == len(m.graph.output) + 1 and np.isfinite(outs[0]).all()
