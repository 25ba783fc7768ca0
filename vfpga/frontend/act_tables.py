"""Element-wise functions of one int8 tensor as 256-entry tables (the CONV ``table``
activation, docs/isa.md), computed at compile time with ONNX Runtime's arithmetic.

A QDQ island ``DequantizeLinear(x) -> f -> QuantizeLinear`` whose float op ``f`` acts on
each element alone maps every int8 code ``q`` of ``x`` to one int8 code of the output, so
it *is* a table ``T[q + 128]``. ONNX Runtime runs such islands either as a contrib
lookup-table kernel it builds the same way (``QLinearSigmoid``, ``QLinearLeakyRelu``: the
table of ``Q(f(DQ(q)))`` over all 256 codes) or as ``DequantizeLinear``, the float kernel
and ``QuantizeLinear`` one after the other. Both compute, per code:

    x = f32(f32(q - z_in) * s_in)                 (DequantizeLinear)
    y = f(x)                                       (the float kernel, float32)
    T[q + 128] = sat8(rne(f32(y / s_out)) + z_out) (QuantizeLinear, MLAS: a division)

so the table reproduces ORT exactly when ``f`` does. :data:`FUNCTIONS` holds float32
implementations of the kernels ORT runs: the clamps and products (HardSigmoid,
HardSwish, LeakyRelu, PRelu, Relu, Clip) are exact float32 expressions; Sigmoid and Tanh
follow MLAS's rational approximations (``MlasComputeLogistic``, ``MlasComputeTanh``);
Erf, Exp (Elu) and Gelu use float32 evaluations whose last-bit agreement with ORT is
measured in ``tests/test_act_tables.py`` and reported per op in docs/conformance.md.

Chains of such ops on one tensor (``x * sigmoid(x)``, ``x * clip(x + 3, 0, 6) / 6``,
``0.5 * x * (1 + erf(x / sqrt(2)))``) stay functions of that tensor's 256 codes: the
lowering composes them into one table (:mod:`vfpga.frontend.qdq_lower`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from vfpga.isa.float32 import mul_ratio, mul_requant

F32A = NDArray[np.float32]
_F = np.float32

#: Every int8 code, in table order (entry ``i`` is code ``i - 128``).
CODES: NDArray[np.int8] = np.arange(-128, 128, dtype=np.int8)


def dequantize(q: NDArray[np.integer], scale: float, zero_point: int) -> F32A:
    """ORT's ``DequantizeLinear``: ``f32(f32(q - zero_point) * scale)``."""
    d = (q.astype(np.int32) - np.int32(zero_point)).astype(_F)
    return (d * _F(scale)).astype(_F)


def quantize(y: F32A, scale: float, zero_point: int) -> NDArray[np.int8]:
    """ORT's ``QuantizeLinear`` to int8 (MLAS): ``sat8(rne(f32(y / scale)) + zero_point)``;
    NaN maps to ``zero_point`` (MLAS converts NaN to 0 before adding it)."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        v = (np.asarray(y, _F) / _F(scale)).astype(_F)
        v = np.where(np.isnan(v), _F(0.0), v)
        r = np.rint(np.clip(v, _F(-1e9), _F(1e9))).astype(np.int64) + int(zero_point)
    return np.clip(r, -128, 127).astype(np.int8)


# --------------------------------------------------------------------------------------
# float32 kernels
# --------------------------------------------------------------------------------------

# MlasComputeLogistic (onnxruntime/core/mlas/lib/logistic.cpp): p(x) / q(x) + 0.5 on
# x clamped to [-18, 18].
_LOG_ALPHA = (
    4.37031012579801e-11,
    1.15627324459942e-07,
    6.08574864600143e-05,
    8.51377133304701e-03,
    2.48287947061529e-01,
)  # alpha_9, 7, 5, 3, 1
_LOG_BETA = (
    6.10247389755681e-13,
    5.76102136993427e-09,
    6.29106785017040e-06,
    1.70198817374094e-03,
    1.16817656904453e-01,
    9.93151921023180e-01,
)  # 10..0


def _horner(x2: F32A, coefs: tuple[float, ...]) -> F32A:
    p = np.full_like(x2, _F(coefs[0]))
    for c in coefs[1:]:
        p = (p * x2 + _F(c)).astype(_F)
    return p


def sigmoid(x: F32A) -> F32A:
    """MLAS's logistic: ``clamp(p(v) / q(v) + 0.5, 0, 1)``, ``v = clamp(x, -18, 18)``."""
    v = np.clip(x, _F(-18.0), _F(18.0)).astype(_F)
    v2 = (v * v).astype(_F)
    p = (_horner(v2, _LOG_ALPHA) * v).astype(_F)
    q = _horner(v2, _LOG_BETA)
    return np.clip((p / q + _F(0.5)).astype(_F), _F(0.0), _F(1.0))


# MlasComputeTanh (onnxruntime/core/mlas/lib/tanh.cpp): p(x) / q(x) on x clamped to
# [-9, 9].
_TANH_ALPHA = (
    -2.76076847742355e-16,
    2.00018790482477e-13,
    -8.60467152213735e-11,
    5.12229709037114e-08,
    1.48572235717979e-05,
    6.37261928875436e-04,
    4.89352455891786e-03,
)  # alpha_13 .. alpha_1
_TANH_BETA = (
    1.19825839466702e-06,
    1.18534705686654e-04,
    2.26843463243900e-03,
    4.89352518554385e-03,
)  # beta_6 .. beta_0


def tanh(x: F32A) -> F32A:
    """MLAS's tanh: ``p(v) / q(v)``, ``v = clamp(x, -9, 9)``."""
    v = np.clip(x, _F(-9.0), _F(9.0)).astype(_F)
    v2 = (v * v).astype(_F)
    p = (_horner(v2, _TANH_ALPHA) * v).astype(_F)
    q = _horner(v2, _TANH_BETA)
    return (p / q).astype(_F)


def hard_sigmoid(x: F32A, alpha: float = 0.2, beta: float = 0.5) -> F32A:
    """ONNX HardSigmoid: ``max(0, min(1, f32(f32(alpha * x) + beta)))``."""
    return np.clip(((_F(alpha) * x).astype(_F) + _F(beta)).astype(_F), _F(0.0), _F(1.0))


def hard_swish(x: F32A) -> F32A:
    """ONNX HardSwish: ``x * HardSigmoid(x, 1/6, 0.5)`` in float32."""
    return (x * hard_sigmoid(x, float(_F(1.0 / 6.0)), 0.5)).astype(_F)


def leaky_relu(x: F32A, alpha: float = 0.01) -> F32A:
    """ONNX LeakyRelu: ``x`` for ``x >= 0``, else ``f32(alpha * x)``."""
    return np.where(x >= 0, x, (_F(alpha) * x).astype(_F)).astype(_F)


def elu(x: F32A, alpha: float = 1.0) -> F32A:
    """ONNX Elu: ``x`` for ``x > 0``, else ``f32(alpha * f32(exp(x) - 1))``."""
    em1 = (np.exp(x.astype(_F)).astype(_F) - _F(1.0)).astype(_F)
    return np.where(x > 0, x, (_F(alpha) * em1).astype(_F)).astype(_F)


def erf(x: F32A) -> F32A:
    """``erf`` in float32 (evaluated in float64, rounded once)."""
    return np.vectorize(math.erf, otypes=[np.float64])(x.astype(np.float64)).astype(_F)


def gelu(x: F32A, approximate: str = "none") -> F32A:
    """ONNX Gelu (opset 20): ``0.5 * x * (1 + erf(x / sqrt(2)))``, or with
    ``approximate = "tanh"`` ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))``."""
    if approximate == "tanh":
        inner = (_F(math.sqrt(2 / math.pi)) * (x + _F(0.044715) * x * x * x)).astype(_F)
        t = np.tanh(inner.astype(np.float64)).astype(_F)
    else:
        t = erf((x * _F(1 / math.sqrt(2))).astype(_F))
    return (_F(0.5) * x * (_F(1.0) + t)).astype(_F)


def silu(x: F32A) -> F32A:
    """SiLU / Swish as one float op: ``x * sigmoid(x)``."""
    return (x * sigmoid(x)).astype(_F)


def qlinear_mul(
    ca: NDArray[np.int8],
    sa: float,
    za: int,
    cb: NDArray[np.int8],
    sb: float,
    zb: int,
    s_out: float,
    z_out: int,
) -> NDArray[np.int8]:
    """ORT's ``QLinearMul`` (MLAS's vectorised kernel) element-wise on int8 codes ``ca``,
    ``cb``: the exact product ``(a - za) * (b - zb)`` times ``f32(f32(sa * sb) / s_out)``
    with the output zero point added in float32 (:func:`vfpga.isa.float32.mul_requant`,
    the arithmetic of ELTWISE mul)."""
    prod = (np.asarray(ca, np.int64) - za) * (np.asarray(cb, np.int64) - zb)
    return mul_requant(prod, mul_ratio(sa, sb, s_out), z_out).astype(np.int8)


def build_table(
    fn: Callable[[F32A], F32A], s_in: float, z_in: int, s_out: float, z_out: int
) -> NDArray[np.int8]:
    """``T[q + 128] = Q_out(fn(DQ_in(q)))`` for every int8 code ``q`` (module docstring)."""
    return quantize(fn(dequantize(CODES, s_in, z_in)), s_out, z_out)


def compose(outer: NDArray[np.int8], inner: NDArray[np.int8]) -> NDArray[np.int8]:
    """The table of ``outer`` applied after ``inner``: ``outer[inner[q + 128] + 128]``."""
    return outer[inner.astype(np.int64) + 128]


__all__ = [
    "CODES",
    "build_table",
    "compose",
    "dequantize",
    "elu",
    "erf",
    "gelu",
    "hard_sigmoid",
    "hard_swish",
    "leaky_relu",
    "qlinear_mul",
    "quantize",
    "sigmoid",
    "silu",
    "tanh",
]
