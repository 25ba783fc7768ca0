"""The IFPs of many tiles at once: each distinct tile shape generated once, the DDR
addresses of the other tiles of that shape patched in bulk.

Many tiles of a layer share a shape (:func:`vfpga.compiler.ifpgen.shape_key`: width,
channel count, border padding, loop nest), and then their instruction streams differ
only in the ``ddr`` fields of LOAD and SAVE, affinely in the tile's origin. For each
shape, :func:`generate_ifps` generates the first tile and the first tile at another
origin with :func:`~vfpga.compiler.ifpgen.make_ifp`, encodes both, and reads each
word's DDR step per unit of origin off their difference; every other tile of the shape
is the first tile's words with ``ddr += step * (origin - first origin)``, computed with
numpy on the packed words. This is what keeps ``ifp-lower-to-isa`` fast: a ResNet-50 has
~10^4 packages over all candidates but ~1,700 shapes (docs/compiler.md).

Self-checks (each failure is handled, never ignored):

* the generator's own buffer accounting (``use``, ``rows``) is compared with the bytes
  its instructions write (:func:`insn_footprint`) once per shape (the buffer side of a
  stream does not depend on DDR addresses): a mismatch is an internal error;
* the two generated tiles of a shape must differ in nothing but LOAD/SAVE ``ddr``
  fields, by exact multiples of their origins' distance, and when the shape has a third
  origin the last tile is generated too and must equal its patched words byte for byte;
  patched addresses must fit the 32-bit field. If any of these fails, every tile of that
  shape is generated on its own (the bytes are then those of the generator, whatever
  the key promised).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vfpga.compiler.ifpgen import IfpCode, Insn, LayerSpec, LoopNest, Tile, make_ifp, shape_key
from vfpga.hw.config import BUFFER_NAMES, HardwareConfig
from vfpga.isa.codec import encode_batch
from vfpga.isa.effects import written_range
from vfpga.isa.spec import INSN_BYTES, Opcode

_WORDS32 = INSN_BYTES // 4
"""32-bit columns of an instruction word."""
_DDR_COL = 2
"""The 32-bit column holding ``ddr`` in LOAD and SAVE words (bytes 8..11)."""


def insn_footprint(insns: list[Insn]) -> dict[str, int]:
    """Per buffer, the end of the highest byte written by ``insns``
    (:func:`vfpga.isa.effects.written_range` of each; 0 where nothing is written)."""
    end = dict.fromkeys(BUFFER_NAMES, 0)
    for op, f in insns:
        written = written_range(op, f)
        if written is None:
            continue
        b = BUFFER_NAMES[written[0]]
        if written[2] > end[b]:
            end[b] = written[2]
    return end


@dataclass
class TileJob:
    """One tile to generate: layer ``spec``, ``tile``, loop nest ``plan`` (None: the one
    :func:`~vfpga.compiler.ifpgen.choose_plan` picks) and ``h`` the rows it must cover."""

    spec: LayerSpec
    tile: Tile
    plan: LoopNest | None
    h: tuple[int, int]


@dataclass
class TileCode:
    """A generated tile: its packed words, its instructions as fields (own dicts), the
    bytes each buffer holds."""

    words: bytes
    insns: list[Insn]
    use: dict[str, int]


def _checked(job: TileJob, hw: HardwareConfig, code: IfpCode | None = None) -> IfpCode:
    """``make_ifp`` of ``job`` (or ``code``), with the generator's buffer accounting and
    rows checked against its instructions (a mismatch is an internal error)."""
    spec, t = job.spec, job.tile
    if code is None:
        code = make_ifp(spec, t, hw, job.plan)
    use = insn_footprint(code.insns)
    if use != {b: code.use.get(b, 0) for b in BUFFER_NAMES} or job.h != (0, code.rows):
        raise AssertionError(
            f"layer {spec.index} tile w={t.w0}:{t.w1} c={t.c0}:{t.c1}: the generator's "
            f"buffer usage {code.use} / rows {code.rows} disagree with its "
            f"instructions {use} / h={job.h[0]}:{job.h[1]}"
        )
    code.use = use
    return code


@dataclass
class _Shape:
    """The jobs of one shape (indices into the job list) and what was generated."""

    members: list[int]
    generated: dict[int, IfpCode]
    origin: list[int]  # each member's origin along the axis its tiles differ in


def _origins(jobs: Sequence[TileJob], members: list[int]) -> list[int] | None:
    """Each member's origin along the one axis the members' tiles differ in (``w0`` or
    ``c0``), or None when they differ in both."""
    w0s = [jobs[i].tile.w0 for i in members]
    c0s = [jobs[i].tile.c0 for i in members]
    if len(set(c0s)) == 1:
        return w0s
    if len(set(w0s)) == 1:
        return c0s
    return None


def generate_ifps(jobs: Sequence[TileJob], hw: HardwareConfig) -> list[TileCode]:
    """The code of every job, in order (see the module docstring). Jobs of different
    layers never share a shape."""
    shapes: dict[tuple[object, ...], _Shape] = {}
    for i, job in enumerate(jobs):
        key: tuple[object, ...]
        if job.plan is None:
            key = ("own", i)
        else:
            key = (id(job.spec), *shape_key(job.spec, job.tile, job.plan))
        sh = shapes.get(key)
        if sh is None:
            shapes[key] = _Shape([i], {}, [])
        else:
            sh.members.append(i)
    for sh in shapes.values():
        origin = _origins(jobs, sh.members)
        first = sh.members[0]
        sh.generated[first] = _checked(jobs[first], hw)
        if origin is None:
            for i in sh.members[1:]:
                sh.generated[i] = _checked(jobs[i], hw)
            continue
        sh.origin = origin
        seen = {origin[0]}
        picks: list[int] = []
        for k, o in enumerate(origin):  # the first tile at a second origin, the last one
            if o not in seen:
                if not picks:
                    picks.append(k)
                seen.add(o)
        if len(seen) > 2:
            picks.append(
                max(k for k, o in enumerate(origin) if o != origin[0] and o != origin[picks[0]])
            )
        for k in picks:
            sh.generated[sh.members[k]] = make_ifp(
                jobs[sh.members[k]].spec, jobs[sh.members[k]].tile, hw, jobs[sh.members[k]].plan
            )
    out: list[TileCode | None] = [None] * len(jobs)
    words = _encode_all([c for sh in shapes.values() for c in sh.generated.values()])
    redo: list[_Shape] = []
    at = 0
    for sh in shapes.values():
        mine = {}
        for i, code in sh.generated.items():
            n = len(code.insns)
            mine[i] = words[at : at + n]
            at += n
        if not _patch(jobs, sh, mine, out):
            redo.append(sh)
    if redo:  # the shape's tiles are not patchable after all: generate each
        rest = [(i, _checked(jobs[i], hw, sh.generated.get(i))) for sh in redo for i in sh.members]
        words = _encode_all([c for _, c in rest])
        at = 0
        for i, code in rest:
            n = len(code.insns)
            out[i] = TileCode(words[at : at + n].tobytes(), code.insns, code.use)
            at += n
    assert all(c is not None for c in out)
    return out  # type: ignore[return-value]


def _encode_all(codes: list[IfpCode]) -> np.ndarray:
    """The words of ``codes``' instructions, concatenated, as an ``(n, 16)`` uint32
    array."""
    blob = encode_batch([i for c in codes for i in c.insns])
    return np.frombuffer(blob, dtype="<u4").reshape(-1, _WORDS32)


def _patch(
    jobs: Sequence[TileJob], sh: _Shape, words: dict[int, np.ndarray], out: list[TileCode | None]
) -> bool:
    """Fill ``out`` for the members of ``sh`` from the generated words; False (nothing
    written) when the shape's tiles turn out not to be patchable."""
    first = sh.members[0]
    base = words[first]
    code0 = sh.generated[first]
    if not sh.origin:  # every member was generated and checked on its own
        for i in sh.members:
            code = sh.generated[i]
            out[i] = TileCode(words[i].tobytes(), code.insns, code.use)
        return True
    if any(jobs[i].h != jobs[first].h for i in sh.members):
        return False
    others = [i for i in sh.members[1:] if i in sh.generated]
    if not others:  # one origin: every member is the same tile
        for i in sh.members:
            out[i] = TileCode(
                base.tobytes(), code0.insns if i == first else _copy(code0.insns), code0.use
            )
        return True
    pos = {i: k for k, i in enumerate(sh.members)}
    o0 = sh.origin[0]
    second = others[0]
    diff = words[second].astype(np.int64) - base.astype(np.int64)
    ops = base[:, 0] & 0xFF
    moves = (ops == int(Opcode.LOAD)) | (ops == int(Opcode.SAVE))
    other = diff.copy()
    other[moves, _DDR_COL] = 0
    if other.any():
        return False
    step, rem = np.divmod(diff[:, _DDR_COL], sh.origin[pos[second]] - o0)
    if rem.any():
        return False
    rows = np.flatnonzero(step)
    shift = np.asarray([sh.origin[pos[i]] - o0 for i in sh.members], dtype=np.int64)
    ddr = base[rows, _DDR_COL].astype(np.int64)[None, :] + shift[:, None] * step[rows][None, :]
    if ddr.size and (ddr.min() < 0 or ddr.max() > 0xFFFFFFFF):
        return False
    allw = np.broadcast_to(base, (len(sh.members), *base.shape)).copy()
    allw[:, rows, _DDR_COL] = ddr
    for i in others[1:]:
        if not np.array_equal(allw[pos[i]], words[i]):
            return False
    row_list = rows.tolist()
    for k, i in enumerate(sh.members):
        own = sh.generated.get(i)
        if own is not None:
            insns = own.insns
        else:
            insns = _copy(code0.insns)
            for r, v in zip(row_list, ddr[k].tolist(), strict=True):
                insns[r][1]["ddr"] = v
        out[i] = TileCode(allw[k].tobytes(), insns, code0.use)
    return True


def _copy(insns: list[Insn]) -> list[Insn]:
    """Instructions with their own field dicts."""
    return [(op, dict(f)) for op, f in insns]
