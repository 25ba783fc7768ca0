"""The .vfb container: round trips, the IFP-only reader, and every reader check."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from vfpga.backend.binary import (
    DIR_DTYPE,
    HEADER_BYTES,
    IFP_DTYPE,
    MAGIC,
    SECTION_ALIGN,
    HostOp,
    Layer,
    SectionKind,
    Tensor,
    VfbFile,
    empty_ifps,
    from_bytes,
    read_header,
    read_ifp_table,
    read_vfb,
    to_bytes,
    write_vfb,
)
from vfpga.errors import BinaryFormatError
from vfpga.fileio import OutputFileError
from vfpga.hw import load_hw
from vfpga.hw.config import ISA_VERSION
from vfpga.isa.codec import encode_one
from vfpga.isa.spec import Opcode

POOL16 = load_hw("pool16")
LARGE1 = load_hw("large1")


def sample_vfb(data_bytes: int = 4096) -> VfbFile:
    """Two layers, three IFPs on two cores, a host op, and ``data_bytes`` of constants."""
    text = b"".join([
        encode_one(Opcode.LOAD, core=0, layer=0, deps=8, to=1, ddr=4096, n0=1, n1=1, n2=64,
                   stride0=64, stride1=64),
        encode_one(Opcode.CONV, core=0, layer=0, deps=1, in_h=1, in_w=1, in_c=8, out_c=8,
                   groups=1, kh=1, kw=1, stride_h=1, stride_w=1, act=1),
        encode_one(Opcode.LOAD, core=1, layer=0, n0=1, n1=1, n2=64),
        encode_one(Opcode.SYNC, core=0, layer=0),
        encode_one(Opcode.SYNC, core=1, layer=0),
        encode_one(Opcode.POOL, core=1, layer=1, mode=3, in_h=2, in_w=2, c=8, scale=0.375),
        encode_one(Opcode.END, core=0, layer=1),
        encode_one(Opcode.END, core=1, layer=1),
    ])
    ifps = empty_ifps(3)
    ifps["layer"] = [0, 0, 1]
    ifps["core"] = [0, 1, 1]
    ifps["candidate"] = [0, 0, 0]
    ifps["w1"] = [4, 8, 8]
    ifps["w0"] = [0, 4, 0]
    ifps["c1"] = [8, 8, 8]
    ifps["h1"] = [2, 2, 1]
    ifps["insn_offset"] = [0, 2, 5]
    ifps["insn_count"] = [2, 1, 1]
    ifps["latency"] = [1000, 900, 10**12]
    ifps["wbuf"] = [64, 64, 0]
    ifps["ibuf"] = [8, 8, 32]
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, data_bytes, dtype=np.uint8).tobytes()
    return VfbFile.for_hw(
        POOL16,
        ddr_size=4096 + data_bytes,
        data_offset=4096,
        num_cores=2,
        text=text,
        ifps=ifps,
        layers=[Layer("conv 1", "conv", 64, 0, 2), Layer("pool/2", "pool", 0, 2, 1)],
        tensors=[
            Tensor("in", "input", "int8", "nhwc", (1, 2, 2, 8), 0, 32, 0.125, -3),
            Tensor("out", "output", "float32", "nchw", (1, 8), 64, 32, 1.0, 0),
            Tensor("w", "constant", "int8", "raw", (), 4096, data_bytes, 1.0, 0),
        ],
        host_ops=[HostOp("sm", "Softmax", 1, (0,), (1,), {"axis": 1, "name": "x y"})],
        data=data,
    )


def reseal(data: bytes | bytearray) -> bytes:
    """Recompute the SHA-256 trailer (to reach the checks behind the checksum)."""
    body = bytes(data[:-32])
    return body + hashlib.sha256(body).digest()


def dir_entry_offset(data: bytes, kind: SectionKind) -> int:
    n = int(np.frombuffer(data, "<u4", 1, 72)[0])
    entries = np.frombuffer(data, DIR_DTYPE, n, HEADER_BYTES)
    i = int(np.flatnonzero(entries["kind"] == int(kind))[0])
    return HEADER_BYTES + i * DIR_DTYPE.itemsize


def section_offset(data: bytes, kind: SectionKind) -> int:
    return int(np.frombuffer(data, "<u8", 1, dir_entry_offset(data, kind) + 8)[0])


def patch(data: bytes, offset: int, new: bytes, *, seal: bool = True) -> bytes:
    out = bytearray(data)
    out[offset : offset + len(new)] = new
    return reseal(out) if seal else bytes(out)


def test_round_trip_tables() -> None:
    v = sample_vfb()
    raw = to_bytes(v)
    w = from_bytes(raw, "s.vfb", POOL16)
    assert to_bytes(w) == raw
    assert w.hw_name == "pool16" and w.hw_fingerprint == POOL16.fingerprint
    assert (w.ddr_size, w.data_offset, w.num_cores, w.num_layers) == (8192, 4096, 2, 2)
    assert w.layers == v.layers and w.tensors == v.tensors and w.host_ops == v.host_ops
    assert np.array_equal(w.ifps, v.ifps) and w.ifps.dtype == IFP_DTYPE
    assert w.text == v.text and w.data == v.data
    assert len(w.program) == 8
    assert w.ifp_text(1) == v.text[128:192]
    assert w.tensor_index("out") == 1
    assert isinstance(w.tensors[0].shape[0], int)


def test_layout_alignment_and_checksum() -> None:
    raw = to_bytes(sample_vfb())
    assert raw[:8] == MAGIC
    assert int(np.frombuffer(raw, "<u8", 1, 64)[0]) == len(raw)
    assert hashlib.sha256(raw[:-32]).digest() == raw[-32:]
    hdr = read_header(raw, "s.vfb")
    assert set(hdr.sections) == set(SectionKind)
    for s in hdr.sections.values():
        assert s.offset % SECTION_ALIGN == 0
    assert hdr.sections[SectionKind.TEXT].size == 8 * 64
    assert hdr.sections[SectionKind.IFPS].size == 3 * 64


def test_write_read_atomic(tmp_path: Path) -> None:
    v = sample_vfb()
    p = tmp_path / "m.vfb"
    write_vfb(p, v)
    assert p.read_bytes() == to_bytes(v)
    assert read_vfb(p, POOL16).text == v.text
    assert sorted(os.listdir(tmp_path)) == ["m.vfb"]  # no temporary left behind
    with pytest.raises(OutputFileError, match=r"cannot write .*does not exist"):
        write_vfb(tmp_path / "missing-dir" / "m.vfb", v)
    with pytest.raises(BinaryFormatError, match="cannot read"):
        read_vfb(tmp_path / "nope.vfb")


def test_read_ifp_table_reads_only_the_beginning(tmp_path: Path) -> None:
    v = sample_vfb(data_bytes=1 << 20)
    p = tmp_path / "big.vfb"
    write_vfb(p, v)
    t = read_ifp_table(p, POOL16)
    assert np.array_equal(t.ifps, v.ifps)
    assert t.hw_name == "pool16" and t.file_size == p.stat().st_size
    assert t.bytes_read < 1024 < t.file_size // 100
    with pytest.raises(BinaryFormatError, match="built for hardware 'pool16'"):
        read_ifp_table(p, LARGE1)
    p.write_bytes(b"VFPGABIX" + p.read_bytes()[8:])
    with pytest.raises(BinaryFormatError, match="bad magic"):
        read_ifp_table(p)


# ----------------------------------------------------------------- reader errors
@pytest.mark.parametrize("cut", [0, 10, HEADER_BYTES - 1])
def test_truncated_header(cut: int) -> None:
    raw = to_bytes(sample_vfb())
    with pytest.raises(BinaryFormatError, match=rf"^t\.vfb: truncated: the file has {cut} bytes"):
        from_bytes(raw[:cut], "t.vfb")


@pytest.mark.parametrize("cut", [HEADER_BYTES, 300, 2000, -1])
def test_truncated_body(cut: int) -> None:
    raw = to_bytes(sample_vfb())
    short = raw[:cut]
    with pytest.raises(BinaryFormatError,
                       match=rf"t\.vfb: truncated: the header \(byte 64\) records {len(raw)} "
                       rf"bytes but the file has only {len(short)}"):
        from_bytes(short, "t.vfb")


def test_trailing_garbage() -> None:
    raw = to_bytes(sample_vfb())
    with pytest.raises(BinaryFormatError, match="3 unexpected bytes after the end"):
        from_bytes(raw + b"abc", "t.vfb")


def test_bad_magic() -> None:
    raw = to_bytes(sample_vfb())
    bad = bytes([raw[0] ^ 0x20]) + raw[1:]
    with pytest.raises(BinaryFormatError,
                       match=r"t\.vfb: not a vfpga binary: bad magic .* at byte 0"):
        from_bytes(bad, "t.vfb")


def test_bad_version() -> None:
    raw = patch(to_bytes(sample_vfb()), 8, np.uint32(7).tobytes())
    with pytest.raises(BinaryFormatError, match=r"t\.vfb: format version 7 at byte 8; this vfpga "
                       r"reads version 1"):
        from_bytes(raw, "t.vfb")


def test_unknown_header_flags() -> None:
    raw = patch(to_bytes(sample_vfb()), 12, np.uint32(4).tobytes())
    with pytest.raises(BinaryFormatError, match="unknown header flags 0x4 at byte 12"):
        from_bytes(raw, "t.vfb")


@pytest.mark.parametrize("where", ["text", "data", "trailer"])
def test_checksum(where: str) -> None:
    raw = to_bytes(sample_vfb())
    off = {"text": section_offset(raw, SectionKind.TEXT) + 70,
           "data": len(raw) - 100, "trailer": len(raw) - 1}[where]
    bad = patch(raw, off, bytes([raw[off] ^ 1]), seal=False)
    with pytest.raises(BinaryFormatError, match=r"^corrupt\.vfb: checksum mismatch: the file is "
                       rf"corrupt .*trailer at byte {len(raw) - 32}"):
        from_bytes(bad, "corrupt.vfb")


def test_fingerprint_mismatch() -> None:
    raw = to_bytes(sample_vfb())
    with pytest.raises(BinaryFormatError) as ei:
        from_bytes(raw, "m.vfb", LARGE1)
    msg = str(ei.value)
    assert msg.startswith("m.vfb: hardware mismatch")
    assert "built for hardware 'pool16'" in msg and "target is 'large1'" in msg
    assert "recompile the model for the target with --hw large1" in msg
    assert from_bytes(raw, "m.vfb", POOL16).hw_name == "pool16"


def test_fingerprint_mismatch_same_name() -> None:
    other = POOL16.from_dict({**POOL16.to_dict(), "num_cores": 8})
    with pytest.raises(BinaryFormatError, match="different configuration also named 'pool16'"):
        from_bytes(to_bytes(sample_vfb()), "m.vfb", other)


def test_unknown_section_kind() -> None:
    raw = to_bytes(sample_vfb())
    at = dir_entry_offset(raw, SectionKind.HOSTOPS)
    bad = patch(raw, at, np.uint32(42).tobytes())
    with pytest.raises(BinaryFormatError, match=rf"unknown section kind 42 in directory entry 5 "
                       rf"at byte {at}"):
        from_bytes(bad, "t.vfb")


def test_duplicate_section() -> None:
    raw = to_bytes(sample_vfb())
    at = dir_entry_offset(raw, SectionKind.HOSTOPS)
    bad = patch(raw, at, np.uint32(int(SectionKind.LAYERS)).tobytes())
    with pytest.raises(BinaryFormatError, match=rf"duplicate LAYERS section in directory entry 5 "
                       rf"at byte {at} \(first in entry 1\)"):
        from_bytes(bad, "t.vfb")


def test_directory_out_of_bounds() -> None:
    raw = to_bytes(sample_vfb())
    bad = patch(raw, 72, np.uint32(10**6).tobytes())
    with pytest.raises(BinaryFormatError, match=r"section directory out of bounds: 1000000 "
                       r"entries"):
        from_bytes(bad, "t.vfb")


def test_section_past_the_end() -> None:
    raw = to_bytes(sample_vfb())
    at = dir_entry_offset(raw, SectionKind.DATA)
    bad = patch(raw, at + 16, np.uint64(10**9).tobytes())
    with pytest.raises(BinaryFormatError, match=r"section DATA \(bytes \d+\.\.\d+\) extends past "
                       rf"the end of the sections at byte {len(raw) - 32}"):
        from_bytes(bad, "t.vfb")


def test_misaligned_section() -> None:
    raw = to_bytes(sample_vfb())
    at = dir_entry_offset(raw, SectionKind.TEXT)
    off = section_offset(raw, SectionKind.TEXT)
    bad = patch(raw, at + 8, np.uint64(off + 8).tobytes())
    with pytest.raises(BinaryFormatError, match=rf"section TEXT at byte {off + 8} is not "
                       "64-byte aligned"):
        from_bytes(bad, "t.vfb")


def test_missing_section() -> None:
    raw = to_bytes(sample_vfb())
    bad = patch(raw, 72, np.uint32(8).tobytes())  # drop the last entry (DATA)
    with pytest.raises(BinaryFormatError, match=r"missing section\(s\) DATA"):
        from_bytes(bad, "t.vfb")


def test_text_does_not_decode() -> None:
    raw = to_bytes(sample_vfb())
    text = section_offset(raw, SectionKind.TEXT)
    bad = patch(raw, text + 3 * 64, bytes([99]))
    with pytest.raises(BinaryFormatError, match=rf"t\.vfb: TEXT section at byte {text}: "
                       r"instruction #3: invalid opcode 99"):
        from_bytes(bad, "t.vfb")


def test_ifp_range_outside_text() -> None:
    raw = to_bytes(sample_vfb())
    ifps = section_offset(raw, SectionKind.IFPS)
    bad = patch(raw, ifps + 64 + 24, np.uint32(50).tobytes())  # IFP #1 insn_count
    with pytest.raises(BinaryFormatError, match=r"IFP #1 \(layer 0, instructions 2\+50\): "
                       r"instruction range extends past the end of TEXT \(8 instructions\)"):
        from_bytes(bad, "t.vfb")


def test_bad_record_enum_and_reserved() -> None:
    raw = to_bytes(sample_vfb())
    tens = section_offset(raw, SectionKind.TENSORS)
    bad = patch(raw, tens + 48 + 4, bytes([9]))
    with pytest.raises(BinaryFormatError, match=rf"TENSORS record 1 at byte {tens + 48}: "
                       r"unknown tensor role code 9"):
        from_bytes(bad, "t.vfb")
    layers = section_offset(raw, SectionKind.LAYERS)
    bad = patch(raw, layers + 5, bytes([1]))
    with pytest.raises(BinaryFormatError, match=rf"LAYERS record 0 at byte {layers}: reserved "
                       "field 'reserved' is not 0"):
        from_bytes(bad, "t.vfb")


def test_validate_on_write() -> None:
    v = sample_vfb()
    v.num_cores = 1
    with pytest.raises(BinaryFormatError, match="instruction #2 uses logical core 1 but the "
                       "program declares 1 cores"):
        to_bytes(v)
    v = sample_vfb()
    v.layers[1].first_ifp = 1
    with pytest.raises(BinaryFormatError, match="layer #1 'pool/2': its IFP #1 belongs to layer 0"):
        to_bytes(v)
    v = sample_vfb()
    v.tensors[0].ddr_offset = v.ddr_size
    with pytest.raises(BinaryFormatError, match="tensor #0 'in': DDR bytes"):
        to_bytes(v)
    v = sample_vfb()
    v.host_ops[0].inputs = (7,)
    with pytest.raises(BinaryFormatError, match=r"input tensor index 7 is not in 0\.\.2"):
        to_bytes(v)
    v = sample_vfb()
    v.hw_name = "a-very-long-hardware-name"
    with pytest.raises(BinaryFormatError, match="longer than 16 bytes"):
        to_bytes(v)


@pytest.mark.parametrize("old", [1, 2, 3, 4])
def test_older_isa_binaries_are_rejected(old: int) -> None:
    """ISA version 2 changed the requantization fields, version 3 added issue 14's
    operations (ELTWISE mul/sub and its new fields), version 4 the RESIZE instruction,
    version 5 the CONV fsum mode (a version-4 unet sums its ConvTransposes in integers):
    an older binary must not run."""
    vfb = sample_vfb()
    assert vfb.isa_version == ISA_VERSION == 5
    vfb.isa_version = old
    with pytest.raises(BinaryFormatError, match=f"instruction-set version {old}, this vfpga "
                       f"runs version {ISA_VERSION}; recompile the model"):
        from_bytes(to_bytes(vfb), "old.vfb")
