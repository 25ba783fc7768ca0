"""Seed binaries of the hostile-input tests and the fuzz campaign
(benchmarks/fuzz_binaries.py): small compiled networks, one of them with host ops
(Softmax and LRN), each compiled for 2 cores of pool16, and helpers to mutate a binary
and reseal it (recompute its SHA-256 trailer, so that the structure is exercised, not the
checksum)."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import replace
from typing import Any

import numpy as np

from vfpga.backend.binary import TRAILER_BYTES, VfbFile, from_bytes, to_bytes
from vfpga.hw.config import load_hw

HW = load_hw("pool16")


def _compile(graph: Any, cores: int = 2) -> bytes:
    from vfpga.driver import compile_graph

    return to_bytes(compile_graph(graph, HW, cores=cores).vfb)


@functools.cache
def seed_binaries() -> dict[str, bytes]:
    """name -> compiled binary: two convolution nets and a classifier with host ops."""
    from qdq_models import classifier, normal_inputs, quantize_qdq
    from qgraph_builders import small_net

    from vfpga.frontend.qdq_lower import lower_qdq

    calib = normal_inputs((1, 3, 16, 16), 8, 0)
    host = lower_qdq(quantize_qdq(classifier(0, softmax=True, lrn=True), calib))
    return {
        "net12": _compile(small_net(seed=11, size=12)),
        "net16": _compile(small_net(seed=12, size=16)),
        "hostops": _compile(host),
    }


def parse(blob: bytes) -> VfbFile:
    return from_bytes(blob, "seed", HW)


def reseal(body: bytes | bytearray) -> bytes:
    """``body`` (a binary without its trailer) with a fresh SHA-256 trailer."""
    body = bytes(body)
    return body + hashlib.sha256(body).digest()


def mutate_bytes(blob: bytes, offset: int, value: int) -> bytes:
    """``blob`` with byte ``offset`` (of the body, before the trailer) set to ``value``,
    resealed."""
    body = bytearray(blob[:-TRAILER_BYTES])
    body[offset % len(body)] = value & 0xFF
    return reseal(body)


def rebuild(blob: bytes, **changes: Any) -> bytes:
    """``blob`` parsed, with fields replaced (``dataclasses.replace``), written again."""
    return to_bytes(replace(parse(blob), **changes))


def random_input(blob: bytes, seed: int) -> dict[str, np.ndarray]:
    """A seeded random int8 value for every input tensor of ``blob``."""
    rng = np.random.default_rng(seed)
    return {t.name: rng.integers(-128, 128, t.shape, dtype=np.int8)
            for t in parse(blob).tensors if t.role == "input"}


def patch_record(blob: bytes, kind: Any, index: int, field: str, value: Any) -> bytes:
    """``blob`` with field ``field`` of record ``index`` of section ``kind`` (a
    :class:`~vfpga.backend.binary.SectionKind`) set to ``value``, resealed (the reader's
    structural checks are what is exercised)."""
    from vfpga.backend.binary import SECTION_DTYPES, read_header

    hdr = read_header(blob, "seed")
    sec = hdr.sections[kind]
    body = bytearray(blob[:-TRAILER_BYTES])
    dt = SECTION_DTYPES[kind]
    recs = np.frombuffer(body, dt, count=sec.size // dt.itemsize, offset=sec.offset).copy()
    recs[index][field] = value
    body[sec.offset : sec.offset + sec.size] = recs.tobytes()
    return reseal(body)


def patch_insns(blob: bytes, op: Any, **fields: int) -> bytes:
    """``blob`` with the given payload/header fields of every instruction of opcode ``op``
    set (the DATA and tables unchanged), rewritten with the writer."""
    from vfpga.isa.spec import OPCODE_DTYPES

    vfb = parse(blob)
    words = np.frombuffer(vfb.text, np.uint8).reshape(-1, 64).copy()
    idx = vfb.program.index_of[op]
    sub = np.ascontiguousarray(words[idx])
    recs = sub.reshape(-1).view(OPCODE_DTYPES[op])
    for k, v in fields.items():
        recs[k] = v
    words[idx] = sub
    return rebuild(blob, text=words.tobytes())
