"""Structured mutations of ``.vfb`` binaries, resealed (the SHA-256 trailer recomputed so
that the reader's structural checks, the loader and the emulator are what is exercised,
not the checksum), and the harness that runs a mutant next to an honest tenant.

Shared by the property tests (tests/test_fuzz.py, bounded) and the long campaign
(benchmarks/fuzz_binaries.py). Mutation kinds: ``byte`` (any body byte), ``header`` (a
header field), ``directory`` (a section-directory field), ``table`` (a field of a PROGRAM,
LAYERS, IFPS, TENSORS, HOSTOPS or DISPATCH record), ``insn`` (a header or payload field of
an instruction), ``data`` (a DATA byte), ``strtab`` (a string-table byte) and ``hostop``
(a host-op record rewritten: type, attributes, inputs, outputs, schedule)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from vfpga.backend.binary import (
    DIR_DTYPE,
    HEADER_DTYPE,
    SECTION_DTYPES,
    TRAILER_BYTES,
    SectionKind,
    from_bytes,
    read_header,
    to_bytes,
)
from vfpga.emulator.faults import BudgetFault
from vfpga.errors import VfpgaError
from vfpga.isa.spec import OPCODE_DTYPES, Opcode
from vfpga.runtime.pool import ResourcePool, Tenant

KINDS = ("byte", "header", "directory", "table", "insn", "data", "strtab", "hostop")
_TABLES = (SectionKind.PROGRAM, SectionKind.LAYERS, SectionKind.IFPS, SectionKind.TENSORS,
           SectionKind.HOSTOPS, SectionKind.DISPATCH)


def _reseal(body: bytearray) -> bytes:
    import hashlib

    return bytes(body) + hashlib.sha256(bytes(body)).digest()


def interesting(rng: np.random.Generator, dt: np.dtype) -> Any:
    """A value of scalar dtype ``dt`` likely to hit an edge: 0, 1, small, the extremes,
    powers of two around them, NaN and infinities for floats, or random."""
    if dt.kind == "f":
        vals = [0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 3.4e38, 1e-45, 65504.0]
        return dt.type(vals[rng.integers(len(vals))] if rng.random() < 0.8
                       else rng.standard_normal() * 10.0 ** int(rng.integers(-3, 6)))
    if dt.kind not in "iu":  # bytes (magic, names): one random byte string
        return rng.integers(0, 256, dt.itemsize, dtype=np.uint8).tobytes()
    info = np.iinfo(dt)
    vals = [0, 1, 2, 3, 7, 8, 15, 16, 63, 64, 127, 128, 255, 256, 4096, 65535, 65536,
            info.max, info.max - 1, info.min, info.max // 2 + 1]
    v = int(vals[rng.integers(len(vals))]) if rng.random() < 0.8 else int(
        rng.integers(info.min, int(info.max) + 1, dtype=np.int64) if info.max < 2**62
        else rng.integers(0, 2**62))
    return dt.type(min(max(v, int(info.min)), int(info.max)))


def _set_field(buf: bytearray, at: int, rec_dt: np.dtype, rng: np.random.Generator) -> str:
    """Set a random field of the record of dtype ``rec_dt`` at byte ``at`` of ``buf``."""
    names = [n for n in rec_dt.names]
    name = names[rng.integers(len(names))]
    fdt, off = rec_dt.fields[name][:2]
    base = fdt.base
    n_elems = int(np.prod(fdt.shape)) if fdt.shape else 1
    k = int(rng.integers(n_elems))
    pos = at + off + k * base.itemsize
    val = interesting(rng, base)
    raw = val if isinstance(val, bytes) else np.array([val], base).tobytes()
    buf[pos : pos + base.itemsize] = raw
    return name


@dataclass
class Mutator:
    """Mutations of one seed binary (its header parsed once)."""

    blob: bytes
    body: bytes = field(init=False)
    sections: dict[SectionKind, tuple[int, int]] = field(init=False)

    def __post_init__(self) -> None:
        self.body = self.blob[:-TRAILER_BYTES]
        hdr = read_header(self.blob, "seed")
        self.sections = {k: (s.offset, s.size) for k, s in hdr.sections.items()}
        self.vfb = from_bytes(self.blob, "seed")

    def mutate(self, rng: np.random.Generator, kind: str | None = None) -> tuple[str, bytes]:
        """A mutant of the seed: ``(description, bytes)``."""
        kind = kind or KINDS[rng.integers(len(KINDS))]
        buf = bytearray(self.body)
        if kind == "byte":
            i = int(rng.integers(len(buf)))
            buf[i] = int(rng.integers(256))
            return f"byte {i}", _reseal(buf)
        if kind == "header":
            name = _set_field(buf, 0, HEADER_DTYPE, rng)
            return f"header.{name}", _reseal(buf)
        if kind == "directory":
            n = len(self.sections)
            i = int(rng.integers(n))
            name = _set_field(buf, HEADER_DTYPE.itemsize + i * DIR_DTYPE.itemsize, DIR_DTYPE, rng)
            return f"directory[{i}].{name}", _reseal(buf)
        if kind == "table":
            sk = _TABLES[rng.integers(len(_TABLES))]
            off, size = self.sections[sk]
            dt = SECTION_DTYPES[sk]
            if size < dt.itemsize:
                return self.mutate(rng, "byte")
            i = int(rng.integers(size // dt.itemsize))
            name = _set_field(buf, off + i * dt.itemsize, dt, rng)
            return f"{sk.name}[{i}].{name}", _reseal(buf)
        if kind == "insn":
            off, size = self.sections[SectionKind.TEXT]
            i = int(rng.integers(size // 64))
            op = Opcode(buf[off + i * 64]) if buf[off + i * 64] in set(Opcode) else Opcode.LOAD
            name = _set_field(buf, off + i * 64, OPCODE_DTYPES[op], rng)
            return f"insn #{i} ({op.name}).{name}", _reseal(buf)
        if kind in ("data", "strtab"):
            off, size = self.sections[SectionKind.DATA if kind == "data" else SectionKind.STRTAB]
            if not size:
                return self.mutate(rng, "byte")
            i = off + int(rng.integers(size))
            buf[i] = int(rng.integers(256))
            return f"{kind} byte {i}", _reseal(buf)
        if kind == "hostop":
            if not self.vfb.host_ops:
                return self.mutate(rng, "table")
            return self._hostop(rng)
        raise ValueError(kind)

    def _hostop(self, rng: np.random.Generator) -> tuple[str, bytes]:
        ops = list(self.vfb.host_ops)
        i = int(rng.integers(len(ops)))
        o = ops[i]
        n_t = len(self.vfb.tensors)
        values: list[Any] = [0, 1, -1, 5, 7, 1e9, -1e9, 0.5, "five", None, True, [1], {}]
        what = ["type", "attr", "drop_attr", "inputs", "outputs", "after"][rng.integers(6)]
        if what == "type":
            types = ["Softmax", "LRN", "Gelu", "", "softmax", "LRN\u00e9"]
            ops[i] = replace(o, op_type=types[rng.integers(len(types))])
        elif what == "attr":
            keys = ["axis", "size", "alpha", "beta", "bias", "x"]
            attrs = dict(o.attrs)
            attrs[keys[rng.integers(len(keys))]] = values[rng.integers(len(values))]
            ops[i] = replace(o, attrs=attrs)
        elif what == "drop_attr" and o.attrs:
            ops[i] = replace(o, attrs={k: v for k, v in o.attrs.items()
                                       if k != sorted(o.attrs)[rng.integers(len(o.attrs))]})
        elif what in ("inputs", "outputs"):
            k = int(rng.integers(0, 4))
            refs = tuple(int(rng.integers(n_t)) for _ in range(k))
            ops[i] = replace(o, **{what: refs})
        else:
            ops[i] = replace(o, after_layer=int(rng.integers(0, max(self.vfb.num_layers, 1))))
        try:
            blob = to_bytes(replace(self.vfb, host_ops=ops))
        except VfpgaError:  # the writer refuses it: mutate the record bytes instead
            return self.mutate(rng, "table")
        return f"hostop[{i}].{what}", blob


def _outputs(req: Any) -> dict[str, bytes]:
    return {k: v.tobytes() for k, v in req.outputs.items()}


@dataclass
class Outcome:
    """What one mutant did: ``stage`` is ``rejected`` (deploy refused it), ``failed`` (its
    request failed), ``done`` (it ran to the end) or ``foreign`` (an exception outside
    vfpga's error classes escaped: a bug). ``honest_ok``: the honest tenant's request in
    the same round ended ``done`` with its expected bytes."""

    stage: str
    error: str | None
    honest_ok: bool
    over_budget: bool
    seconds: float


@dataclass
class Arena:
    """A pool with one honest tenant (its expected output bytes known) where mutants are
    deployed next to it, one at a time."""

    honest_blob: bytes
    request_seconds: float = 30.0
    pool: ResourcePool = field(init=False)
    honest: Tenant = field(init=False)

    def __post_init__(self) -> None:
        from vfpga.hw.config import load_hw

        self.pool = ResourcePool(load_hw("pool16"), request_seconds=self.request_seconds,
                                 tenant_ddr_bytes=64 << 20)
        self.honest = self.pool.create_tenant("honest", 2)
        self.honest.deploy(self.honest_blob)
        rng = np.random.default_rng(0)
        self.x = {t.name: rng.integers(-128, 128, t.shape, dtype=np.int8)
                  for t in self.honest.vfb.tensors if t.role == "input"}  # type: ignore[union-attr]
        self.want = {k: v.tobytes() for k, v in self.honest.infer(self.x).items()}
        self._n = 0

    def run(self, mutant: bytes, inputs_seed: int = 0) -> Outcome:
        """Deploy ``mutant`` on a fresh tenant, submit one request for it and one for the
        honest tenant, step the pool to idle, and report."""
        t0 = time.perf_counter()
        self._n += 1
        bad = self.pool.create_tenant(f"m{self._n}", 2)
        stage, error = "rejected", None
        req = None
        try:
            try:
                bad.deploy(mutant)
            except VfpgaError as exc:
                error = str(exc)
            else:
                rng = np.random.default_rng(inputs_seed)
                vfb = bad.vfb
                assert vfb is not None
                x = {t.name: rng.integers(-128, 128, max(t.size, 0), dtype=np.int8)
                     .view(np.dtype(t.dtype) if t.dtype != "int32" else np.int8)
                     for t in vfb.tensors if t.role == "input"}
                req = bad.submit(x)
            hon = self.honest.submit(self.x)
            steps = 0
            while self.pool.step():
                steps += 1
                if steps > 100_000:
                    raise RuntimeError("the pool did not become idle in 100,000 steps")
            if req is not None:
                stage, error = req.status, req.error
                if stage == "rejected":
                    stage = "failed"
            honest_ok = hon.status == "done" and _outputs(hon) == self.want
        except Exception as exc:
            return Outcome("foreign", f"{type(exc).__name__}: {exc}", False, False,
                           time.perf_counter() - t0)
        finally:
            if not bad.left:
                bad.leave()
        over = (error is not None and BudgetFault.__name__ in error) or (
            error is not None and "wall-time budget" in error)
        return Outcome(stage, error, honest_ok, over, time.perf_counter() - t0)
