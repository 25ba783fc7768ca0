"""Assembler, disassembler, objdump and the `vfpga asm` / `vfpga objdump` commands."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vfpga.backend.asm import assemble, assemble_file, tokenize
from vfpga.backend.binary import HostOp, Layer, Tensor, VfbFile, empty_ifps, from_bytes, to_bytes
from vfpga.backend.disasm import disassemble, fmt_float32, objdump
from vfpga.cli.main import cli
from vfpga.errors import AsmError
from vfpga.hw import load_hw
from vfpga.isa.codec import encode_one
from vfpga.isa.spec import (
    FLAG_FIELDS,
    FLOAT_FIELDS,
    LOAD_TARGETS,
    PARAM_RECORD_DTYPE,
    PAYLOAD_FIELDS,
    Opcode,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = sorted((ROOT / "tests" / "data" / "asm").glob("*.s"))
EXAMPLES = sorted((ROOT / "vfpga" / "examples").glob("*.s"))
POOL16 = load_hw("pool16")


def test_fixtures_exist() -> None:
    assert len(FIXTURES) >= 3


@pytest.mark.parametrize("path", FIXTURES + EXAMPLES, ids=lambda p: p.name)
def test_round_trip(path: Path) -> None:
    """text -> binary -> text -> binary is byte-identical, also through objdump -s."""
    v = assemble_file(path)
    raw = to_bytes(v)
    back = from_bytes(raw, path.name, POOL16 if v.hw_name == "pool16" else None)
    text = disassemble(back)
    assert to_bytes(assemble(text, "dis.s")) == raw
    listing = objdump(raw, path.name, full_contents=True)
    assert to_bytes(assemble(listing, "objdump.s")) == raw
    assert disassemble(assemble(text, "dis.s")) == text


def test_conv_fixture_contents() -> None:
    v = assemble_file(ROOT / "tests/data/asm/conv1.s")
    assert v.hw_name == "pool16" and v.num_cores == 1 and v.num_insns == 7
    assert v.data_offset == 1024 and len(v.data) == 576 + 96
    assert [ly.name for ly in v.layers] == ["conv1"] and v.layers[0].ifp_count == 1
    ifp = v.ifps[0]
    assert (int(ifp["w0"]), int(ifp["w1"]), int(ifp["c1"]), int(ifp["insn_count"])) == (0, 8, 8, 5)
    f = v.program.fields(3)
    assert f["opcode"] == Opcode.CONV and f["act"] == 1 and f["deps"] == 0b1001
    assert f["in_h"] == 10 and f["out_zp"] == -128
    # layer and core inherited from the .ifp block
    assert v.program.fields(0)["layer"] == 0
    params = np.frombuffer(v.data[576:], PARAM_RECORD_DTYPE)
    assert params[1].tolist() == (-48, 2.0**-5, 1.0)
    assert v.data[576 + 12 : 576 + 24] == (
        np.int32(-48).tobytes() + np.float32(0.03125).tobytes() + np.float32(1).tobytes())


def test_objdump_tables() -> None:
    raw = to_bytes(assemble_file(ROOT / "tests/data/asm/sync2.s"))
    out = objdump(raw, "sync2.vfb")
    assert "; IFP table" in out
    row = next(line for line in out.splitlines() if line.startswith(";   1  conv1x1"))
    assert row.split()[1:] == ["1", "conv1x1", "0", "1", "0:8", "0:4", "8:16", "5+5", "310",
                               "256", "64", "96", "256", "0"]
    assert "; sections:" in out and "TEXT" in out and "; tensors" in out
    assert "\n   9: save core=1 layer=0 deps=wait_prev from=obuf ddr=264" in out
    # without -s the DATA is summarised, and the listing still assembles (no constants)
    assert "\n.data" not in out and "DATA: 320 bytes" in out
    assert len(assemble(out, "x.s").data) == 0
    full = objdump(raw, "sync2.vfb", full_contents=True)
    assert "\n.datasize 320\n.data 0\nfc 03 01" in full


def random_insn(op: Opcode, rng: np.random.Generator) -> bytes:
    fields: dict[str, int | float] = {"core": int(rng.integers(0, 4)),
                                      "layer": int(rng.integers(0, 2))}
    for f in PAYLOAD_FIELDS[op]:
        if f.name in FLOAT_FIELDS[op]:  # any finite float32 bit pattern
            bits = np.array([rng.integers(0, 2**32)], np.uint32)
            while not np.isfinite(bits.view(np.float32)[0]):
                bits[0] = rng.integers(0, 2**32)
            fields[f.name] = float(bits.view(np.float32)[0])
            continue
        info = np.iinfo(np.dtype(f.np_type))
        fields[f.name] = int(rng.integers(info.min, int(info.max) + 1))
    flags = 0  # packed here: ELTWISE's flag field 'op' would clash with encode_one's op
    for ff in FLAG_FIELDS[op]:
        if ff.enum is None:
            v = int(rng.integers(0, 1 << ff.width))
        elif op is Opcode.LOAD:
            v = int(rng.choice([int(b) for b in LOAD_TARGETS]))
        elif op is Opcode.SAVE:
            v = 3
        else:
            v = int(rng.choice([int(e) for e in ff.enum]))
        flags |= v << ff.shift
    fields["flags"] = flags
    legal = {Opcode.LOAD: [0, 2, 8, 10], Opcode.SAVE: [0, 1, 4, 5],
             Opcode.SYNC: [0], Opcode.END: [0]}.get(op, list(range(16)))
    fields["deps"] = int(rng.choice(legal))
    return encode_one(op, **fields)


def test_random_program_round_trip() -> None:
    """Every field of every opcode, at random values over its full range, survives
    binary -> text -> binary; IFPs out of TEXT order use the explicit insns= form."""
    rng = np.random.default_rng(3)
    text = b"".join(random_insn(op, rng) for _ in range(40) for op in Opcode)
    n = len(text) // 64
    ifps = empty_ifps(3)
    ifps["layer"] = [0, 1, 1]
    ifps["insn_offset"] = [50, 10, 10]  # out of order and overlapping
    ifps["insn_count"] = [5, 20, 0]
    ifps["core"] = [3, 0, 1]
    ifps["candidate"] = [0, 0, 1]
    ifps["c1"] = [65535, 3, 3]
    ifps["latency"] = [2**63, 1, 0]
    ifps["abuf"] = [2**32 - 1, 0, 0]
    v = VfbFile.for_hw(
        POOL16, ddr_size=2**40, data_offset=2**39, num_cores=4, text=text, ifps=ifps,
        layers=[Layer("l 0", "conv", 2**60, 0, 1), Layer("1", "other", 0, 1, 2)],
        tensors=[Tensor("t;\"x\"", "input", "int32", "raw", (), 0, 0, float("nan"), -7),
                 Tensor("a,b", "output", "float32", "nchw", (1, 2, 3, 4), 8, 96, 1e-40, 2**31 - 1),
                 Tensor("dup", "activation", "int8", "nhwc", (5,), 8, 5, 0.1, 0),
                 Tensor("dup", "constant", "int8", "raw", (5,), 8, 5, -3.4e38, 0)],
        host_ops=[HostOp("h", "LRN", 0xFFFFFFFF, (0, 1, 2, 3), (1,), {"s": "a;b {c}", "k": [1.5]}),
                  HostOp("", "Softmax", 1, (), (), {})],
        data=bytes(range(256)) * 3 + bytes(100) + b"\x01" + bytes(50),
    )
    raw = to_bytes(v)
    text_s = disassemble(from_bytes(raw, "r.vfb"))
    assert "insns=50:5" in text_s
    assert to_bytes(assemble(text_s, "r.s")) == raw
    assert n == 40 * len(Opcode)


def test_float32_format() -> None:
    for x in (0.1, 1.0, -0.0, 1e-40, 3.4028235e38, float("inf"), float("nan")):
        s = fmt_float32(x)
        v = assemble(f".tensor t role=input dtype=int8 layout=raw shape=- offset=0 scale={s}\n",
                     "f.s")
        assert np.float32(v.tensors[0].scale).tobytes() == np.float32(x).tobytes()


def test_float_fields_and_f32_data() -> None:
    """Float32 instruction fields print as the shortest decimal that reads back to the
    same bits, parse from decimals (rounded to float32) or f32: bits; .f32 writes
    little-endian float32 data (f32: bits may be non-finite there)."""
    v = assemble(
        "pool mode=avg scale=0.1 out_scale=f32:0x3dcccccd in_h=2 in_w=2 c=1 kh=2 kw=2 "
        "stride_h=1 stride_w=1\n"
        "eltwise n=4 scale_a=-1.5e-07 scale_b=3.4028235e38 offset=-0.0\n"
        ".data 0\n.i32 -7\n.f32 0.1, f32:0x7fc00000\n.f32 1e-45\n", "f.s")
    p = v.program.fields(0)
    assert p["scale"] == float(np.float32(0.1)) == p["out_scale"]
    e = v.program.fields(1)
    assert e["scale_a"] == float(np.float32(-1.5e-7))
    assert e["scale_b"] == float(np.float32(3.4028235e38))
    assert np.float32(e["offset"]).tobytes() == np.float32(-0.0).tobytes()
    assert v.data == (np.int32(-7).tobytes() + np.float32(0.1).tobytes()
                      + bytes.fromhex("0000c07f") + np.float32(1e-45).tobytes())
    text = disassemble(v)
    assert "scale=0.1 " in text and "out_scale=0.1\n" in text
    assert "scale_a=-1.5e-07 scale_b=3.4028235e+38 offset=-0.0 " in text
    assert to_bytes(assemble(text, "g.s")) == to_bytes(v)
    with pytest.raises(ValueError, match="'scale'=nan is not finite"):
        encode_one(Opcode.POOL, scale=float("nan"))


def test_tokenizer() -> None:
    assert tokenize('.hostop "a b" attrs={"x": "; {"} ; comment') == [
        ".hostop", '"a b"', 'attrs={"x": "; {"}']
    assert tokenize("  load ddr=0x10   ; c") == ["load", "ddr=0x10"]


def test_defaults_and_conveniences() -> None:
    v = assemble(
        ".layer c kind=conv\n"
        ".tensor x role=input dtype=int32 layout=raw shape=2x3 offset=64\n"
        ".ifp layer=c core=2 w=0:4\n"
        "conv in_c=8 act=relu6\n"
        ".endifp\n"
        "end core=1\n"
        ".data 4\n"
        ".i8 1, 2,-3\n"
        "ff 00\n"
        ".i32 -1\n"
        ".u8 255\n", "d.s")
    assert v.hw_name == "pool16"
    assert v.num_cores == 3  # highest core used + 1
    assert v.ddr_size == 128  # tensors end at 64 + 24 bytes, rounded up to 64
    assert v.tensors[0].size == 24
    assert v.layers[0].first_ifp == 0 and v.layers[0].ifp_count == 1
    f = v.program.fields(0)
    assert (f["core"], f["layer"], f["act"], f["in_c"], f["groups"]) == (2, 0, 2, 8, 0)
    assert v.data == bytes(4) + bytes([1, 2, 253, 255, 0]) + b"\xff\xff\xff\xff\xff"


def test_hw_directive_and_override() -> None:
    src = ".hw large1\nend\n"
    assert assemble(src, "h.s").hw_fingerprint == load_hw("large1").fingerprint
    assert assemble(src, "h.s", hw=POOL16).hw_fingerprint == POOL16.fingerprint


@pytest.mark.parametrize(
    ("src", "line", "message"),
    [
        ("end\nfrob x=1\n", 2, "unknown mnemonic 'frob'"),
        ("load tox=ibuf\n", 1, "load has no field 'tox'"),
        ("conv kh=300\n", 1, "field 'kh'=300 is out of range [0, 255]"),
        ("conv pad_value=-129\n", 1, "field 'pad_value'=-129 is out of range [-128, 127]"),
        ("load ddr=12abc\n", 1, "'12abc' is not an integer"),
        ("load to=obuf\n", 1, "'to=obuf' is not one of ibuf, wbuf, pbuf"),
        ("pool mode=median\n", 1, "is not one of max, avg_pad, avg, global_avg"),
        ("conv acc_in=2\n", 1, "acc_in=2 is out of range [0, 1]"),
        ("load deps=wait_prev\n", 1, "load runs on the LOAD module, which cannot use wait_prev"),
        ("save deps=signal_next\n", 1, "cannot use signal_next"),
        ("sync deps=wait_next\n", 1, "cannot use wait_next"),
        ("conv deps=wait_later\n", 1, "unknown dependency 'wait_later'"),
        ("end core=64\n", 1, "core=64 is out of range [0, 63]"),
        ("conv in_c=1 in_c=2\n", 1, "'in_c' given twice"),
        ("\n.frob 1\n", 2, "unknown directive '.frob'"),
        (".layer a kind=conv\n.ifp layer=a\n.ifp layer=a\n", 3, ".ifp inside the .ifp block"),
        (".endifp\n", 1, ".endifp without an open .ifp block"),
        (".layer a kind=conv\n.ifp layer=a\nend\n", 4, "has no .endifp"),
        (".ifp layer=zz\n.endifp\n", 1, "unknown layer 'zz'"),
        (".layer a kind=conv\n.layer a kind=pool\n.ifp layer=a\n.endifp\n", 3, "ambiguous"),
        (".layer a kind=blob\n", 1, "unknown layer kind 'blob'"),
        ("end\n5: end\n", 2, "label 5: is not this instruction's index 1"),
        ("00 11\n", 1, "hex data line outside a .data block"),
        (".i8 1\n", 1, "data outside a .data block"),
        (".data 0\n.i8 1,2\n.data 1\n.i8 3\n", 4, "data byte 1 is written twice"),
        (".data 0\n.i8 200\n", 2, ".i8=200 is out of range"),
        (".hw nosuchhw\n", 1, "unknown hardware 'nosuchhw'"),
        (".tensor t role=input dtype=int8 layout=nhwc shape=1x2x3x4x5 offset=0\n", 1,
         "more than 4 dimensions"),
        (".hostop h op=X after=- in=nope\n", 1, "unknown tensor 'nope'"),
        (".hostop h op=X after=- attrs={\"a\":}\n", 1, "attrs: not JSON"),
        (".program ddr_size=10 isa=1\n", 1, "this assembler produces ISA version 5"),
        ("pool scale=nan\n", 1, "pool: field 'scale'=nan is not finite"),
        ("eltwise offset=-inf\n", 1, "eltwise: field 'offset'=-inf is not finite"),
        ("eltwise scale_a=f32:0x7fc00000\n", 1, "is not finite"),
        ("pool out_scale=1e39\n", 1, "out_scale'=1e39 does not fit a float32"),
        ("pool scale=0.5x\n", 1, "'0.5x' is not a number"),
        ("pool shift=3\n", 1, "pool has no field 'shift'"),
        ("eltwise c_zp=3\n", 1, "eltwise has no field 'c_zp'"),
        (".data 0\n.f32 inf\n", 2, ".f32=inf is not finite"),
        (".data 0\n.f32\n", 2, ".f32 needs at least one value"),
        (".layer a kind=conv\nend layer=3\n", 3, "instruction #0 belongs to layer 3"),
        ('.tensor "unterminated\n', 1, "unterminated string"),
    ],
)
def test_errors(src: str, line: int, message: str) -> None:
    with pytest.raises(AsmError) as ei:
        assemble(src, "bad.s")
    msg = str(ei.value)
    assert message in msg
    if "instruction #0" not in message:
        assert msg.startswith(f"bad.s:{line}: "), msg
    else:
        assert msg.startswith("bad.s: "), msg


def test_assemble_file_missing(tmp_path: Path) -> None:
    with pytest.raises(AsmError, match="cannot read"):
        assemble_file(tmp_path / "none.s")


# ----------------------------------------------------------------------- CLI
def run(args: list[str]):
    return CliRunner().invoke(cli, args)


def test_cli_asm_and_objdump(tmp_path: Path) -> None:
    src = ROOT / "tests/data/asm/pool_eltwise.s"
    out = tmp_path / "pe.vfb"
    r = run(["asm", str(src), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "10 instructions, 2 IFPs" in r.output
    raw = out.read_bytes()
    r = run(["objdump", "-s", str(out)])
    assert r.exit_code == 0, r.output
    assert "; IFP table" in r.output
    listing = tmp_path / "pe.s"
    listing.write_text(r.stdout)
    r = run(["asm", str(listing), "-o", str(tmp_path / "again.vfb")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "again.vfb").read_bytes() == raw
    r = run(["objdump", "--full-contents", "--hw", "pool16", str(out), "-o",
             str(tmp_path / "l.s")])
    assert r.exit_code == 0 and (tmp_path / "l.s").read_text() == listing.read_text()
    # default output name, and --hw overriding .hw
    r = run(["asm", str(listing), "--hw", "large1"])
    assert r.exit_code == 0, r.output
    assert from_bytes((tmp_path / "pe.vfb").read_bytes(), "x", load_hw("large1"))
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def check_failure(r, message: str) -> None:
    assert r.exit_code != 0
    assert f"error: {message}" in r.stderr or message in r.stderr, r.stderr
    assert r.stderr.startswith("error: ")
    assert "Traceback" not in r.output


def test_cli_asm_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.s"
    bad.write_text(".hw pool16\nload to=ibuf\nconv kh=999\n")
    out = tmp_path / "bad.vfb"
    r = run(["asm", str(bad), "-o", str(out)])
    check_failure(r, f"{bad}:3: conv: field 'kh'=999 is out of range [0, 255]")
    assert sorted(os.listdir(tmp_path)) == ["bad.s"]  # no output, no temporary
    r = run(["asm", str(tmp_path / "missing.s")])
    check_failure(r, "cannot read")
    r = run(["asm", str(bad), "--hw", "nosuch"])
    check_failure(r, "unknown hardware 'nosuch'")
    assert sorted(os.listdir(tmp_path)) == ["bad.s"]


def test_cli_objdump_errors(tmp_path: Path) -> None:
    raw = to_bytes(assemble_file(ROOT / "tests/data/asm/conv1.s"))
    p = tmp_path / "c.vfb"
    p.write_bytes(raw[:-5])
    check_failure(run(["objdump", str(p)]), f"{p}: truncated")
    p.write_bytes(raw[:500] + bytes([raw[500] ^ 0xFF]) + raw[501:])
    check_failure(run(["objdump", str(p)]), f"{p}: checksum mismatch")
    p.write_bytes(raw)
    check_failure(run(["objdump", "--hw", "large1", str(p)]), "hardware mismatch")
    p.write_text("hello")
    check_failure(run(["objdump", str(p)]), "truncated")
    check_failure(run(["objdump", str(tmp_path / "none.vfb")]), "cannot read")
