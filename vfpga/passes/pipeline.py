"""The static compile pipeline over the IR, in one process: a ``dnn`` module to a
``.vfb`` binary.

:func:`compile_module` runs, in order, ``dnn-plan-memory``, ``dnn-tile``, ``ifp-package``,
``ifp-lower-to-isa``, ``ifp-estimate-latency`` and ``ifp-select{cores=N}`` on the module
(in place) and encodes it with :func:`vfpga.backend.vfb_target.module_to_vfb`. The IR is
never printed or re-parsed between stages; the module is verified at the stage
boundaries (input, after planning, after packaging, after lowering, after selection;
the ~10^5 instruction ops only once, after lowering, since later stages do not touch
them).
The result equals ``compile_graph(module_to_qgraph(module), hw, cores).vfb`` byte for
byte (``vfpga.backend.binary.to_bytes``).

:data:`STATIC_PIPELINE` is the same sequence as an ``xdsl-opt`` / ``vfpga-opt`` pass
pipeline string (``-p``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import VerifyException

from vfpga.backend.binary import VfbFile
from vfpga.dialects import ifp
from vfpga.hw.config import HardwareConfig
from vfpga.passes.dnn_plan_memory import DnnPlanMemoryPass, StaticPassError
from vfpga.passes.dnn_tile import tile_module
from vfpga.passes.ifp_estimate_latency import IfpEstimateLatencyPass
from vfpga.passes.ifp_lower_to_isa import IfpLowerToIsaPass
from vfpga.passes.ifp_package import IfpPackagePass
from vfpga.passes.ifp_select import IfpSelectPass

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``, called before each stage and once at the end."""

STATIC_PIPELINE = (
    "dnn-plan-memory,dnn-tile{{hw={hw}}},ifp-package,ifp-lower-to-isa,"
    "ifp-estimate-latency,ifp-select{{cores={cores}}}"
)
"""The pipeline as a ``-p`` string (``STATIC_PIPELINE.format(hw="pool16", cores=4)``)."""

STAGES = ("plan memory", "tile", "package", "lower to isa", "estimate latency", "select",
          "encode")


def verify_module(module: ModuleOp, stage: str, instructions: bool = True) -> None:
    """Verify ``module``. Once it holds ``ifp`` ops, every top-level op is verified and
    the ``ifp`` ops are walked explicitly, which skips the isolation check of
    ``builtin.module`` (a walk over every nested op, ~10^5 instructions, none of which
    has operands). With ``instructions=False`` the ``isa`` bodies of the packages are
    skipped. Raises :class:`StaticPassError` naming ``stage``."""
    try:
        if not any(isinstance(op, ifp.LayerOp) for op in module.ops):
            module.verify()
            return
        for op in module.ops:
            if not isinstance(op, ifp.LayerOp):
                op.verify()
                continue
            op.verify(verify_nested_ops=False)
            for cand in op.candidates():
                cand.verify(verify_nested_ops=False)
                for pkg in cand.packages():
                    pkg.verify(verify_nested_ops=False)
                    if instructions:
                        for ins in pkg.instructions():
                            ins.verify()
    except VerifyException as exc:
        raise StaticPassError(f"the module does not verify {stage}: {exc}") from None


def compile_module(
    module: ModuleOp,
    hw: HardwareConfig,
    cores: int,
    progress: Progress | None = None,
    timings: dict[str, float] | None = None,
) -> VfbFile:
    """Compile ``module`` (one ``dnn.graph``) for ``cores`` cores of ``hw``; the module is
    transformed in place and keeps the whole result (every candidate's packages).

    ``timings``, if given, receives the seconds spent per stage (keys of :data:`STAGES`
    plus ``"verify"``). Raises :class:`StaticPassError` (a
    :class:`vfpga.errors.CompileError`) for a bad core count, a layer that fits no tiling,
    or a module that does not verify.
    """
    if not 1 <= cores <= hw.num_cores:
        raise StaticPassError(f"--cores must be 1..{hw.num_cores} for {hw.name}, got {cores}")
    ctx = Context()
    t = timings if timings is not None else {}
    t.setdefault("verify", 0.0)

    def verify(stage: str) -> None:
        t0 = time.perf_counter()
        # the instruction bodies are verified once, right after they are built
        verify_module(module, stage, instructions=stage == "after lowering")
        t["verify"] += time.perf_counter() - t0

    steps: list[tuple[str, Callable[[], None], str | None]] = [
        ("plan memory", lambda: DnnPlanMemoryPass().apply(ctx, module), "after planning"),
        ("tile", lambda: tile_module(module, hw), None),
        ("package", lambda: IfpPackagePass().apply(ctx, module), "after packaging"),
        ("lower to isa", lambda: IfpLowerToIsaPass().apply(ctx, module), "after lowering"),
        ("estimate latency", lambda: IfpEstimateLatencyPass().apply(ctx, module), None),
        ("select", lambda: IfpSelectPass(cores).apply(ctx, module), "after selection"),
    ]
    verify("on input")
    for i, (stage, run, check) in enumerate(steps):
        if progress:
            progress(stage, i, len(STAGES))
        t0 = time.perf_counter()
        run()
        t[stage] = time.perf_counter() - t0
        if check is not None:
            verify(check)
    if progress:
        progress("encode", len(steps), len(STAGES))
    from vfpga.backend.vfb_target import module_to_vfb

    t0 = time.perf_counter()
    vfb = module_to_vfb(module, hw)
    t["encode"] = time.perf_counter() - t0
    if progress:
        progress("done", len(STAGES), len(STAGES))
    return vfb
