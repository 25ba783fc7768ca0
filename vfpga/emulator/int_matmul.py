"""Exact ``uint8 x int8 -> int32`` matrix products on onnxruntime's ``MatMulInteger``.

The emulator's CONV sums are integer dot products. onnxruntime's CPU ``MatMulInteger``
(MLAS) computes them in integer arithmetic, several times faster than the float32 BLAS
path of :mod:`vfpga.emulator.kernels`, *when* the machine's kernel is exact: MLAS's
``u8 x s8`` kernels on x86 with AVX-512 VNNI or AVX-VNNI accumulate each product into an
int32 lane (``vpdpbusd``, wrapping modulo ``2**32``), but its AVX2 kernel without VNNI adds
pairs of products in saturating int16 (``vpmaddubsw``) and is wrong for large operands.
So the backend is never trusted by CPU name: :func:`backend` runs a self-test on first use
(operands at the extremes of both ranges, a reduction long enough to wrap int32, the
shapes MLAS dispatches differently: one row, one column, batches) against numpy's int64
products reduced modulo ``2**32``, and returns ``None`` if onnxruntime is missing or any
result differs. The kernels then use their float32 path, which is exact everywhere.

Semantics of :meth:`IntMatmul.__call__`: ``a`` uint8 ``[..., m, k]``, ``b`` int8
``[..., k, n]`` (numpy ``matmul`` broadcasting); the result is int32 ``[..., m, n]`` with
``sum_k (a - 128) * b`` (``a`` holds int8 values plus 128; onnxruntime subtracts the
zero point 128 itself) reduced modulo ``2**32`` into the int32 range (two's complement),
exactly what the CONV instruction's int32 accumulator holds.

A product of one row (``a`` ``[1][k]`` or ``[1][1][k]``, ``b`` ``[k][n]`` or ``[1][k][n]``:
fully connected layers, the squeeze-excite gates) runs on the compiled
:attr:`vfpga.emulator.jit.JitKernels.row_product` instead when the compiled kernels are
available: ``MatMulInteger`` packs all of ``b`` for every call, which costs more than the
product itself when ``a`` has one row (1.5-7x slower than the compiled loop for ``k x n``
from ``960 x 240`` to ``4096 x 4096``). The self-test covers it with the one-row cases.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypedDict

import numpy as np
from numpy.typing import NDArray

from vfpga.isa.float32 import U8_BIAS

if TYPE_CHECKING:  # onnxruntime is imported where a session is made (it is slow to load)
    from onnxruntime import InferenceSession

__all__ = ["IntMatmul", "backend", "current_threads", "require", "threads",
           "unavailable_reason"]

#: Set to ``0`` to never use onnxruntime for CONV sums (the float32 BLAS path is used).
ENV_DISABLE = "VFPGA_EMULATOR_INT_MATMUL"

_OUTPUTS = ["Y"]
_lock = threading.Lock()


class _State(TypedDict, total=False):
    """What :func:`backend` decided: the backend (None if unavailable) and why not."""

    backend: IntMatmul | None
    why: str | None


_state: _State = {}
_local = threading.local()


class IntMatmul:
    """``MatMulInteger`` sessions (one per thread count, created on demand)."""

    def __init__(self) -> None:
        import onnxruntime as ort  # noqa: F401 - ImportError means: no backend

        from vfpga.emulator import jit

        self._sessions: dict[int, Callable[..., list[NDArray[np.int32]]]] = {}
        jk = jit.get()
        #: the compiled one-row product (see the module docstring), or None
        self._row = None if jk is None else jk.row_product

    def _session(self, nthreads: int) -> Callable[..., list[NDArray[np.int32]]]:
        """The run function of the session with ``nthreads`` threads: the binding's own
        ``run`` (the Python wrapper's per-call input validation costs about a microsecond,
        and the inputs here are always two valid arrays) when the installed onnxruntime
        has it, else the public ``InferenceSession.run``."""
        run = self._sessions.get(nthreads)
        if run is None:
            sess = _make_session(nthreads)
            inner = getattr(sess, "_sess", None)
            run = inner.run if inner is not None and hasattr(inner, "run") else sess.run
            self._sessions[nthreads] = run
        return run

    def __call__(self, a: NDArray[np.uint8], b: NDArray[np.int8],
                 nthreads: int | None = None) -> NDArray[np.int32]:
        """``(a - 128) @ b`` exactly, modulo ``2**32`` (see the module docstring), on ``nthreads``
        onnxruntime threads (``None``: as :func:`threads` set for the calling thread)."""
        if self._row is not None and a.size == a.shape[-1] and b.size == b.shape[-2] * b.shape[
                -1] and a.ndim >= b.ndim:  # one row (any leading axes of length 1)
            row = np.empty((1, b.shape[-1]), np.int32)
            self._row(a.reshape(1, -1), b.reshape(b.shape[-2:]), row)
            return row.reshape(a.shape[:-1] + b.shape[-1:])
        run = self._session(current_threads() if nthreads is None else nthreads)
        out: NDArray[np.int32] = run(_OUTPUTS, {"A": a, "B": b}, None)[0]
        return out


def _make_session(nthreads: int) -> InferenceSession:
    import onnxruntime as ort
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("A", TensorProto.UINT8, None)
    b = helper.make_tensor_value_info("B", TensorProto.INT8, None)
    y = helper.make_tensor_value_info("Y", TensorProto.INT32, None)
    zp = helper.make_tensor("a_zero_point", TensorProto.UINT8, [], [U8_BIAS])
    node = helper.make_node("MatMulInteger", ["A", "B", "a_zero_point"], ["Y"])
    model = helper.make_model(
        helper.make_graph([node], "int_matmul", [a, b], [y], initializer=[zp]),
        opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = max(0, nthreads)  # 0: onnxruntime's default
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def _expected(a: np.ndarray, b: np.ndarray) -> NDArray[np.int32]:
    """``(a - 128) @ b`` in int64 (exact for the self-test's sizes), wrapped to int32."""
    return np.matmul(a.astype(np.int64) - U8_BIAS, b.astype(np.int64)).astype(np.int32)


def _self_test(mm: IntMatmul) -> str | None:
    """None if ``mm`` is exact on cases that expose saturating or approximate kernels,
    else a description of the first wrong case."""
    rng = np.random.default_rng(20261121)
    cases: list[tuple[str, np.ndarray, np.ndarray]] = []
    for m, k, n in ((1, 1, 1), (1, 700, 3), (7, 4096, 33), (64, 300, 64), (200, 27, 256)):
        for av, bv in ((255, 127), (255, -128), (0, -128), (128, 127)):
            cases.append((f"{m}x{k}x{n} of {av}*{bv}", np.full((m, k), av, np.uint8),
                          np.full((k, n), bv, np.int8)))
        cases.append((f"{m}x{k}x{n} random", rng.integers(0, 256, (m, k), dtype=np.uint8),
                      rng.integers(-128, 128, (k, n), dtype=np.int8)))
    # 140000 * -128 * -128 > 2**31: the int32 accumulator must wrap, not saturate
    for m in (1, 2):  # one row: the compiled kernel
        cases.append((f"{m}x140000x3 wrapping", np.full((m, 140000), 0, np.uint8),
                      np.full((140000, 3), -128, np.int8)))
    cases.append(("batched 1x1x300x5", rng.integers(0, 256, (1, 1, 300), dtype=np.uint8),
                  rng.integers(-128, 128, (1, 300, 5), dtype=np.int8)))
    cases.append(("batched 3x17x40x9", rng.integers(0, 256, (3, 17, 40), dtype=np.uint8),
                  rng.integers(-128, 128, (3, 40, 9), dtype=np.int8)))
    for name, a, b in cases:
        got = mm(a, b)
        if got.dtype != np.int32 or got.shape != (a.shape[:-1] + b.shape[-1:]) or not (
                np.array_equal(got, _expected(a, b))):
            what = ("the compiled one-row product" if getattr(mm, "_row", None) is not None
                    and a.size == a.shape[-1] else "onnxruntime MatMulInteger")
            return f"{what} is not exact on this machine ({name})"
    return None


def backend() -> IntMatmul | None:
    """The verified exact backend, or ``None`` (onnxruntime missing, disabled by
    ``VFPGA_EMULATOR_INT_MATMUL=0``, or the self-test failed: see
    :func:`unavailable_reason`). Decided once per process."""
    with _lock:
        if "backend" not in _state:
            mm: IntMatmul | None = None
            why: str | None = None
            if os.environ.get(ENV_DISABLE, "1") == "0":
                why = f"disabled by {ENV_DISABLE}=0"
            else:
                try:
                    mm = IntMatmul()
                    why = _self_test(mm)
                except Exception as exc:
                    why = f"onnxruntime MatMulInteger unavailable: {exc}"
                if why is not None:
                    mm = None
            _state["backend"] = mm
            _state["why"] = why
        return _state["backend"]


def require() -> IntMatmul:
    """:func:`backend`, for callers that chose the ``"int8"`` path only because it exists."""
    mm = backend()
    if mm is None:
        raise RuntimeError(f"exact integer products are unavailable: {unavailable_reason()}")
    return mm


def unavailable_reason() -> str | None:
    """Why :func:`backend` is ``None`` (``None`` if it is available or not yet decided)."""
    return _state.get("why")


def current_threads() -> int:
    """The onnxruntime threads :func:`threads` set for the calling thread (default 1;
    0: onnxruntime's default)."""
    return int(getattr(_local, "threads", 1))


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Within the block, products on this thread use ``n`` onnxruntime threads
    (``None``: onnxruntime's default, the machine's physical cores)."""
    old = getattr(_local, "threads", 1)
    _local.threads = n if n is not None else 0
    try:
        yield
    finally:
        _local.threads = old
