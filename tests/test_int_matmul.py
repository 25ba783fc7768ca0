"""The exact integer product backend of the emulator (onnxruntime ``MatMulInteger``): its
self-test rejects a kernel that is not exact, the verified backend is exact, and with the
backend switched off the kernels use their float32 paths with the same results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vfpga.emulator import int_matmul, jit, kernels


class _Exact:
    """``(a - 128) @ b`` in numpy int64, wrapped to int32: what the backend must return."""

    def __call__(self, a: np.ndarray, b: np.ndarray, nthreads: int | None = None) -> np.ndarray:
        return np.matmul(a.astype(np.int64) - 128, b.astype(np.int64)).astype(np.int32)


class _SaturatingPairs(_Exact):
    """AVX2 ``vpmaddubsw`` without VNNI: adjacent products summed in saturating int16."""

    def __call__(self, a: np.ndarray, b: np.ndarray, nthreads: int | None = None) -> np.ndarray:
        a = a.astype(np.int64)  # u8 operand as the kernel sees it (zero point applied later)
        b = b.astype(np.int64)
        k = a.shape[-1]
        if k % 2:
            a = np.concatenate([a, np.zeros((*a.shape[:-1], 1), np.int64)], axis=-1)
            b = np.concatenate([b, np.zeros((1, *b.shape[1:]), np.int64)], axis=-2)
        prods = a[..., :, None, :] * np.swapaxes(b, -1, -2)[..., None, :, :]  # [m][n][k]
        pairs = np.clip(prods[..., 0::2] + prods[..., 1::2], -32768, 32767)
        raw = pairs.sum(axis=-1)
        zp = 128 * b.sum(axis=-2)[..., None, :]
        return (raw - zp).astype(np.int32)


class _Wrong(_Exact):
    def __call__(self, a: np.ndarray, b: np.ndarray, nthreads: int | None = None) -> np.ndarray:
        out = super().__call__(a, b)
        out.flat[-1] += 1  # one wrong sum, in the last element only
        return out


@pytest.mark.parametrize("fake", [_SaturatingPairs(), _Wrong()], ids=["saturating", "off-by-one"])
def test_self_test_rejects_inexact_kernels(fake: _Exact) -> None:
    why = int_matmul._self_test(fake)  # type: ignore[arg-type]
    assert why is not None and "not exact" in why


def test_self_test_accepts_exact_products() -> None:
    assert int_matmul._self_test(_Exact()) is None  # type: ignore[arg-type]


@pytest.mark.skipif(int_matmul.backend() is None,
                    reason="onnxruntime MatMulInteger is not in use on this machine (missing, "
                    "switched off, or not exact: the self-test tests above cover that case)")
def test_backend_is_exact_on_random_and_extreme_operands() -> None:
    mm = int_matmul.backend()
    assert mm is not None
    rng = np.random.default_rng(4)
    for shape_a, shape_b in [((33, 217), (217, 40)), ((2, 5, 64), (2, 64, 3)), ((1, 9), (9, 1))]:
        a = rng.integers(0, 256, shape_a, dtype=np.uint8)
        b = rng.integers(-128, 128, shape_b, dtype=np.int8)
        np.testing.assert_array_equal(mm(a, b), _Exact()(a, b))
        np.testing.assert_array_equal(mm(a, b, 2), _Exact()(a, b))  # two onnxruntime threads
    a = np.zeros((3, 3000), np.uint8)  # all -128 after the zero point
    b = np.full((3000, 2), -128, np.int8)
    np.testing.assert_array_equal(mm(a, b), np.full((3, 2), 3000 * 16384, np.int32))


@pytest.mark.skipif(int_matmul.backend() is None or jit.get() is None,
                    reason="the one-row products run compiled only with the backend and numba")
def test_one_row_products_are_exact() -> None:
    """Products of one row (fully connected layers) run on the compiled kernel, not on
    onnxruntime; exact for any layout of the operands, int32 sums wrapping modulo 2**32."""
    mm = int_matmul.backend()
    assert mm is not None and mm._row is not None
    rng = np.random.default_rng(9)
    for shape_a, shape_b in [((1, 960), (960, 240)), ((1, 1, 300), (1, 300, 7)),
                             ((1, 1), (1, 1)), ((1, 1, 40), (40, 5)),
                             ((1, 1003), (1003, 17)), ((1, 7), (7, 3))]:  # K % 4 != 0
        a = rng.integers(0, 256, shape_a, dtype=np.uint8)
        b = rng.integers(-128, 128, shape_b, dtype=np.int8)
        got = mm(a, b)
        assert got.dtype == np.int32 and got.shape == np.matmul(a, b).shape
        np.testing.assert_array_equal(got, _Exact()(a, b))
    b = rng.integers(-128, 128, (64, 20), dtype=np.int8)[:, ::2]  # strided columns
    a = rng.integers(0, 256, (1, 64), dtype=np.uint8)
    np.testing.assert_array_equal(mm(a, b), _Exact()(a, b))
    for k in (5, 6, 7):  # the rows past the last group of four, at the extremes
        a = np.full((1, k), 255, np.uint8)
        b = np.full((k, 3), -128, np.int8)
        np.testing.assert_array_equal(mm(a, b), np.full((1, 3), k * 127 * -128, np.int32))
    a = np.zeros((1, 140000), np.uint8)  # 140000 * 16384 > 2**31: wraps
    b = np.full((140000, 3), -128, np.int8)
    np.testing.assert_array_equal(mm(a, b), np.full((1, 3), 140000 * 16384 - 2**32, np.int32))


def test_switched_off_by_environment(tmp_path: Path) -> None:
    """``VFPGA_EMULATOR_INT_MATMUL=0``: no backend, float32 paths, the same CONV results."""
    code = (
        "import numpy as np\n"
        "from vfpga.emulator import int_matmul, jit, kernels\n"
        "assert int_matmul.backend() is None, 'backend on'\n"
        "print(int_matmul.unavailable_reason())\n"
        "geo = kernels.conv_geometry((5, 6, 40), (7, 3, 3, 40), pads=(1, 1, 1, 1))\n"
        "print(geo.path)\n"
        "rng = np.random.default_rng(0)\n"
        "x = rng.integers(-128, 128, (5, 6, 40), dtype=np.int8)\n"
        "w = rng.integers(-128, 128, (7, 3, 3, 40), dtype=np.int8)\n"
        "acc = kernels.conv(x, w, start=np.arange(7, dtype=np.int32), pads=(1, 1, 1, 1),\n"
        "                   pad_value=5, acc_out=True)\n"
        "import sys\n"
        "np.save(sys.argv[1], acc)\n"
    )
    out = tmp_path / "acc.npy"
    res = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True,
                         env={**os.environ, int_matmul.ENV_DISABLE: "0"}, check=False)
    assert res.returncode == 0, res.stderr
    why, path = res.stdout.split("\n")[:2]
    assert int_matmul.ENV_DISABLE in why and path in ("wide", "im2col")
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (5, 6, 40), dtype=np.int8)
    w = rng.integers(-128, 128, (7, 3, 3, 40), dtype=np.int8)
    here = kernels.conv(x, w, start=np.arange(7, dtype=np.int32), pads=(1, 1, 1, 1),
                        pad_value=5, acc_out=True)
    np.testing.assert_array_equal(np.load(out), here)
