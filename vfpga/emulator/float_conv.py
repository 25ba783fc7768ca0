"""The kernel of a CONV with the ``fsum`` flag (ISA version 5, docs/isa.md, "CONV fsum"):
a transposed convolution summed in float32 in onnxruntime's order, whose one home is
:mod:`vfpga.isa.float_conv`; this module checks a decoded word's fields and parameter
records and binds them to it. The segment and epoch plans leave these CONVs to the
interpreter (``Core._conv`` dispatches here)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from vfpga.emulator import kernels
from vfpga.isa.float_conv import fsum_conv
from vfpga.isa.spec import PARAM_RECORD_BYTES, Act

__all__ = ["check_fsum_fields", "fsum_conv_insn"]


def check_fsum_fields(f: Mapping[str, Any]) -> None:
    """ValueError (the caller names the instruction) for word fields a ``fsum`` CONV
    cannot have, or an ``in_scale`` on a CONV without ``fsum``."""
    s = float(f["in_scale"])
    if not f["fsum"]:
        if s != 0.0:
            raise ValueError(f"in_scale={s} is set without fsum (it must be 0)")
        return
    if f["acc_in"] or f["acc_out"]:
        raise ValueError(
            "fsum cannot chain partial sums through abuf (acc_in / acc_out): "
            "its taps are summed after all input channels"
        )
    if f["groups"] != 1:
        raise ValueError(f"fsum needs groups=1, got groups={f['groups']}")
    if not math.isfinite(s) or s == 0.0:
        raise ValueError(f"invalid in_scale={s} (finite, non-zero)")


def fsum_conv_insn(
    x: np.ndarray, w: np.ndarray, praw: np.ndarray, f: Mapping[str, Any]
) -> np.ndarray:
    """The int8 output ``[out_h][out_w][out_c]`` of the ``fsum`` CONV with fields ``f``
    reading the input tile ``x``, the weights ``w`` and the pbuf bytes ``praw`` (its
    records, then the activation table with ``act = table``). ValueError for invalid
    fields or records."""
    check_fsum_fields(f)
    out_c = f["out_c"]
    bias, scale, divisor = kernels.unpack_params(praw[: out_c * PARAM_RECORD_BYTES])
    for name, v, nonzero in (("scale", scale, False), ("divisor", divisor, True)):
        bad = ~np.isfinite(v) | ((v == 0) if nonzero else False)
        if np.any(bad):
            k = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"invalid parameter: {name}={float(v[k])} in the record of "
                f"output channel {k} (fsum: finite{', non-zero' if nonzero else ''})"
            )
    act = Act(f["act"])
    bounds = kernels.act_bounds(act, f["act_lo"], f["act_hi"])
    out = fsum_conv(
        x,
        w,
        in_scale=f["in_scale"],
        scale=scale,
        bias=bias,
        divisor=divisor,
        pad_value=f["pad_value"],
        out_zp=f["out_zp"],
        bounds=bounds,
        stride=(f["stride_h"], f["stride_w"]),
        pads=(f["pad_t"], f["pad_b"], f["pad_l"], f["pad_r"]),
        ups=(max(f["ups_h"], 1), max(f["ups_w"], 1)),
        dil=(max(f["dil_h"], 1), max(f["dil_w"], 1)),
    )
    if act is Act.TABLE:
        kernels.apply_act_table(out, kernels.act_table(praw[out_c * PARAM_RECORD_BYTES :]))
    return out
