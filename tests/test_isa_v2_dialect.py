"""ISA v2 float32 fields in the ``isa`` dialect: exact printing and parsing, the
conversion to and from encoder fields, and the codec's float handling."""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import Builtin, ModuleOp
from xdsl.parser import Parser
from xdsl.utils.exceptions import VerifyException

from vfpga.dialects.isa import (
    EltwiseOp,
    Isa,
    PoolOp,
    fields_to_op,
    float_attr,
    format_f32,
    op_to_fields,
)
from vfpga.isa.codec import decode, encode_batch, encode_one
from vfpga.isa.spec import FLOAT_FIELDS, Opcode, PoolMode


def _parse(text: str) -> ModuleOp:
    ctx = Context()
    ctx.load_dialect(Builtin)
    ctx.load_dialect(Isa)
    return Parser(ctx, text).parse_module()


def _random_f32(rng: np.random.Generator, n: int) -> np.ndarray:
    bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    vals = bits.view(np.float32)
    return vals[np.isfinite(vals)]


def test_float_fields_are_the_spec_float32_fields() -> None:
    assert FLOAT_FIELDS[Opcode.POOL] == {"scale", "out_scale"}
    assert FLOAT_FIELDS[Opcode.ELTWISE] == {"scale_a", "scale_b", "offset", "out_scale"}
    # CONV's requantization constants are in pbuf records; its one float field is the
    # fsum input scale (ISA version 5)
    assert FLOAT_FIELDS[Opcode.CONV] == {"in_scale"}


def test_custom_format_round_trips_every_float32_exactly() -> None:
    """Random bit patterns (normal, subnormal, huge, negative zero) print as the shortest
    decimal with a '.', and parse back to the same bits."""
    vals = [*_random_f32(np.random.default_rng(5), 300).tolist(), -0.0, 1e-45, 3.4028235e38,
            -1.1754942e-38, 0.1, 1e16, 9.999999e-5]
    lines = []
    for v in vals:
        text = format_f32(v)
        assert "." in text and "inf" not in text and "nan" not in text
        lines.append(f"isa.eltwise n=1 scale_a={text}")
    module = _parse("\n".join(lines))
    ops = list(module.ops)
    for v, op in zip(vals, ops, strict=True):
        assert isinstance(op, EltwiseOp)
        got = op.field("scale_a")
        assert np.float32(got).tobytes() == np.float32(v).tobytes(), (v, format_f32(v))
    assert str(module) == str(_parse(str(module)))


def test_hex_literals_are_bits_and_decimals_round_to_float32() -> None:
    module = _parse("isa.eltwise n=2 scale_a=0x3DCCCCCD scale_b=0.1 offset=7")
    op = next(iter(module.ops))
    assert op.field("scale_a") == op.field("scale_b") == float(np.float32(0.1))
    assert op.field("offset") == 7.0
    assert "scale_a=0.1 scale_b=0.1 offset=7.0" in str(op)


def test_fields_to_op_and_back_encode_like_encode_one() -> None:
    fields = {"mode": int(PoolMode.AVG), "in_h": 4, "in_w": 4, "c": 8, "kh": 2, "kw": 2,
              "stride_h": 2, "stride_w": 2, "in_zp": -3, "out_zp": 5, "scale": 0.0235,
              "out_scale": 0.1}
    op = fields_to_op(Opcode.POOL, fields)
    op.verify()
    opcode, back = op_to_fields(op)
    assert opcode is Opcode.POOL
    assert back["scale"] == float(np.float32(0.0235))
    assert encode_batch([(opcode, back)]) == encode_one(Opcode.POOL, **fields)
    # 0.0 is absent, -0.0 is kept (distinct bits)
    elt = fields_to_op(Opcode.ELTWISE, {"n": 4, "scale_a": 0.0, "scale_b": 1.5, "offset": -0.0})
    _, f = op_to_fields(elt)
    assert "scale_a" not in f and np.signbit(f["offset"])
    word = encode_batch([(Opcode.ELTWISE, f)])
    assert decode(word).fields(0)["offset"] == 0.0
    assert word == encode_one(Opcode.ELTWISE, n=4, scale_b=1.5, offset=-0.0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"scale_a": float("inf")}, "'scale_a' = inf is not finite"),
        ({"offset": float("nan")}, "'offset' = nan is not finite"),
    ],
)
def test_verifier_rejects_non_finite(fields: dict[str, float], message: str) -> None:
    op = fields_to_op(Opcode.ELTWISE, {"n": 1, **fields})
    with pytest.raises(VerifyException, match=message):
        op.verify()


def test_pool_verifier_mode_rules() -> None:
    base = {"in_h": 4, "in_w": 4, "c": 1, "kh": 2, "kw": 2, "stride_h": 2, "stride_w": 2}
    fields_to_op(Opcode.POOL, {**base, "mode": int(PoolMode.MAX)}).verify()
    with pytest.raises(VerifyException, match="must be 0 for mode=max"):
        fields_to_op(Opcode.POOL, {**base, "mode": int(PoolMode.MAX), "out_scale": 1.0}).verify()
    with pytest.raises(VerifyException, match="non-zero for the average modes"):
        fields_to_op(Opcode.POOL, {**base, "mode": int(PoolMode.AVG_PAD)}).verify()
    g = {"in_h": 4, "in_w": 4, "c": 1, "mode": int(PoolMode.GLOBAL_AVG), "scale": 0.5}
    fields_to_op(Opcode.POOL, g).verify()
    with pytest.raises(VerifyException, match="must be 0 for mode=global_avg"):
        fields_to_op(Opcode.POOL, {**g, "out_scale": 2.0}).verify()
    op = PoolOp.create(properties={**fields_to_op(Opcode.POOL, g).properties,
                                   "out_scale": float_attr(float("inf"))})
    with pytest.raises(VerifyException, match="not finite"):
        op.verify()


def test_codec_float_fields() -> None:
    word = encode_one(Opcode.ELTWISE, n=3, scale_a=np.float32(0.3), scale_b=2, offset=-1e-3)
    f = decode(word).fields(0)
    assert (f["scale_a"], f["scale_b"], f["offset"]) == (
        float(np.float32(0.3)), 2.0, float(np.float32(-1e-3)))
    assert isinstance(f["n"], int) and isinstance(f["scale_b"], float)
    with pytest.raises(ValueError, match="'scale_b'=inf is not finite"):
        encode_batch([(Opcode.ELTWISE, {"n": 1}), (Opcode.ELTWISE, {"scale_b": float("inf")})])
    with pytest.raises(ValueError, match="'offset' must be a number"):
        encode_one(Opcode.ELTWISE, offset="x")
