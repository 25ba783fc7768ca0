"""The IFPs of many tiles at once: each distinct tile shape generated once, the DDR
addresses of the other tiles of that shape patched in bulk.

Many tiles of a layer share a shape (:func:`vfpga.compiler.ifpgen.shape_key`: width,
channel count, row count, border padding of columns and rows, loop nest), and then
their instruction streams differ only in the ``ddr`` fields of LOAD and SAVE, affinely
in the tile's origin ``(w0, c0, h0)``. For each shape, :func:`generate_ifps` generates
the first tile and the tiles whose origins first span the others' offsets (up to three:
tiles of two-dimensional partitions differ in two axes, tiles of several candidates in
three) with :func:`~vfpga.compiler.ifpgen.make_ifp`, encodes them, and reads each
word's DDR change per basis offset off their differences; every other tile of the shape
is the first tile's words with its offset's combination of those changes added to
``ddr``, computed with numpy on the packed words. This is what keeps ``ifp-lower-to-isa``
fast: a ResNet-50 has ~10^4 packages over all candidates but ~2,600 shapes
(docs/compiler.md).

Self-checks (each failure is handled, never ignored):

* the generator's own buffer accounting (``use``, ``rows``) is compared with the bytes
  its instructions write (:func:`insn_footprint`) once per shape (the buffer side of a
  stream does not depend on DDR addresses): a mismatch is an internal error;
* every member of a shape must have the first member's border geometry, computed from
  the layer apart from the key (:func:`_border`: loop nest, size, input rows and
  columns with their padding, group alignment); the generated basis tiles must differ
  from the first in nothing but LOAD/SAVE ``ddr`` fields; each member's offset must be
  an exact combination of the basis offsets and its patched addresses whole numbers in
  the 32-bit field; and when a member lies at an origin none of the generated tiles
  has, the last such member is generated too and must equal its patched words byte for
  byte. If any of these fails, every tile of that shape is generated on its own (the
  bytes are then those of the generator, whatever the key promised).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vfpga.compiler.ifpgen import (
    IfpCode,
    Insn,
    LayerSpec,
    LoopNest,
    Tile,
    _in_range,
    make_ifp,
    shape_key,
)
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


class TileCode:
    """A generated tile: its packed ``words``, its instructions as fields (``insns``, own
    dicts), the bytes each buffer holds (``use``).

    A patched tile's instructions are made on first use (``ddr``: the first member's
    instructions, and the rows and values of its patched ``ddr`` fields): the packed
    words are what the binary holds, and the fields are read only for the packages the
    latency model simulates (one per timing) or when ``ifp-materialize-isa`` asks, so
    copying them for every package cost time and ~10^5 live objects."""

    __slots__ = ("_ddr", "_insns", "use", "words")

    def __init__(self, words: bytes, insns: list[Insn] | None, use: dict[str, int],
                 ddr: tuple[list[Insn], list[int], list[int]] | None = None) -> None:
        assert (insns is None) != (ddr is None)
        self.words, self._insns, self.use, self._ddr = words, insns, use, ddr

    @property
    def insns(self) -> list[Insn]:
        if self._insns is None:
            assert self._ddr is not None
            base, rows, values = self._ddr
            insns = _copy(base)
            for r, v in zip(rows, values, strict=True):
                insns[r][1]["ddr"] = v
            self._insns, self._ddr = insns, None
        return self._insns

    def get_insns(self) -> list[Insn]:
        """:attr:`insns` as a method (a deferred value for :mod:`vfpga.dialects.derived`)."""
        return self.insns


def _checked(job: TileJob, hw: HardwareConfig, code: IfpCode | None = None) -> IfpCode:
    """``make_ifp`` of ``job`` (or ``code``), with the generator's buffer accounting and
    rows checked against its instructions (a mismatch is an internal error)."""
    spec, t = job.spec, job.tile
    if code is None:
        code = make_ifp(spec, t, hw, job.plan)
    use = insn_footprint(code.insns)
    if use != {b: code.use.get(b, 0) for b in BUFFER_NAMES} or job.h != code.rows:
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
    #: each member's origin (w0, c0, h0) minus the first member's; empty when every
    #: member is generated on its own
    offset: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int64))
    #: the generated members that span the offsets (the first one excluded)
    basis: list[int] = field(default_factory=list)


def _offsets(jobs: Sequence[TileJob], members: list[int]) -> np.ndarray:
    """Each member's origin ``(w0, c0, h0)`` minus the first member's."""
    o = np.asarray([(jobs[i].tile.w0, jobs[i].tile.c0, jobs[i].h[0]) for i in members],
                   np.int64)
    return o - o[0]


def _border(job: TileJob) -> tuple[int, ...]:
    """What a tile's stream depends on besides its origin, computed from the layer
    (independently of :func:`~vfpga.compiler.ifpgen.shape_key`): its loop nest, size, the input rows
    and columns it loads with their border padding, its channels' alignment to the conv
    groups (its first channel when the output is stored shuffled)."""
    spec, t = job.spec, job.tile
    (ekh, ekw), (sh, sw), (uh, uw) = spec.kernel_extent, spec.stride, spec.ups
    _ci, h, w = spec.in_shape
    rlo, rhi, pad_t, pad_b = _in_range(job.h[0], job.h[1], ekh, sh, spec.pads[0], h, uh)
    clo, chi, pad_l, pad_r = _in_range(t.w0, t.w1, ekw, sw, spec.pads[2], w, uw)
    unit = spec.opg if spec.grouped else 1
    return (t.w1 - t.w0, t.c1 - t.c0, job.h[1] - job.h[0], rhi - rlo, pad_t, pad_b,
            chi - clo, pad_l, pad_r, t.c0 if spec.out.shuffle else t.c0 % unit,
            job.h[0] % uh, t.w0 % uw,
            *((p.og, p.rb, p.chunk, p.in_cols) if (p := job.plan) is not None else ()))


def _cross(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, int, int]:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _picks(offset: np.ndarray) -> tuple[list[int], int | None]:
    """Positions of members whose offsets span all the others' (each raising the rank;
    exact integer tests), and of one more member to check the patch against (the last
    whose offset is none of theirs), if any."""
    rows = [tuple(r) for r in offset.tolist()]
    basis: list[int] = []
    normal: tuple[int, ...] = (0, 0, 0)
    for k in range(1, len(rows)):
        v = rows[k]
        if not basis:
            new = any(v)
        elif len(basis) == 1:
            new = any(_cross(rows[basis[0]], v))
        else:
            new = sum(a * b for a, b in zip(normal, v, strict=True)) != 0
        if new:
            basis.append(k)
            if len(basis) == 2:
                normal = _cross(rows[basis[0]], rows[basis[1]])
            if len(basis) == 3:
                break
    known = {rows[k] for k in (0, *basis)}
    extra = [k for k in range(len(rows)) if rows[k] not in known]
    return basis, (extra[-1] if extra else None)


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
            shapes[key] = _Shape([i], {})
        else:
            sh.members.append(i)
    for sh in shapes.values():
        first = sh.members[0]
        sh.generated[first] = _checked(jobs[first], hw)
        if len(sh.members) == 1:
            continue
        sh.offset = _offsets(jobs, sh.members)
        basis, check = _picks(sh.offset)
        sh.basis = [sh.members[k] for k in basis]
        for k in (*basis, *(() if check is None else (check,))):
            job = jobs[sh.members[k]]
            sh.generated[sh.members[k]] = make_ifp(job.spec, job.tile, hw, job.plan)
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
    written) when the shape's tiles turn out not to be patchable.

    Each member's offset is written in the basis members' offsets (exactly); its DDR
    fields are the first member's plus the same combination of the basis members' DDR
    differences, which must be whole numbers; every other field must equal the first
    member's, and the generated check member must equal its patched words."""
    first = sh.members[0]
    base = words[first]
    code0 = sh.generated[first]
    if len(sh.members) == 1:
        out[first] = TileCode(base.tobytes(), code0.insns, code0.use)
        return True
    border = _border(jobs[first])
    if any(_border(jobs[i]) != border for i in sh.members[1:]):
        return False
    if not sh.basis:  # one origin: every member is the same tile
        words0 = base.tobytes()
        for i in sh.members:
            if i == first:
                out[i] = TileCode(words0, code0.insns, code0.use)
            else:
                out[i] = TileCode(words0, None, code0.use, (code0.insns, [], []))
        return True
    pos = {i: k for k, i in enumerate(sh.members)}
    ops = base[:, 0] & 0xFF
    moves = (ops == int(Opcode.LOAD)) | (ops == int(Opcode.SAVE))
    base64 = base.astype(np.int64)
    diffs = []
    for i in sh.basis:
        diff = words[i].astype(np.int64) - base64
        ddr_diff = diff[:, _DDR_COL].copy()
        diff[moves, _DDR_COL] = 0
        if diff.any():
            return False
        diffs.append(ddr_diff)
    steps = np.stack(diffs)  # (basis, words)
    rows = np.flatnonzero(steps.any(axis=0))
    shift = _shifts(sh.offset, sh.offset[[pos[i] for i in sh.basis]], steps[:, rows])
    if shift is None:
        return False
    ddr = base[rows, _DDR_COL].astype(np.int64)[None, :] + shift
    if ddr.size and (ddr.min() < 0 or ddr.max() > 0xFFFFFFFF):
        return False
    allw = np.broadcast_to(base, (len(sh.members), *base.shape)).copy()
    allw[:, rows, _DDR_COL] = ddr
    for i in sh.generated:  # (same dtype: equal bytes are equal words)
        if allw[pos[i]].tobytes() != words[i].tobytes():
            return False
    row_list = rows.tolist()
    ddr_lists = ddr.tolist()
    for k, i in enumerate(sh.members):
        own = sh.generated.get(i)
        if own is not None:
            out[i] = TileCode(allw[k].tobytes(), own.insns, code0.use)
        else:
            out[i] = TileCode(allw[k].tobytes(), None, code0.use,
                              (code0.insns, row_list, ddr_lists[k]))
    return True


def _shifts(offset: np.ndarray, basis: np.ndarray, steps: np.ndarray) -> np.ndarray | None:
    """Each member's DDR shift per patched word: its offset written in the ``basis``
    offsets (``coef @ basis == offset``) times the basis members' DDR differences
    ``steps`` (basis x words); None when an offset is no such combination or a shift is
    not a whole number. One basis offset (the usual case) is solved in exact integers;
    more in floating point, checked to 1e-6 (the offsets are small integers)."""
    if len(basis) == 1:
        b = basis[0]
        den = int(b @ b)
        num = offset @ b  # coef = num / den
        if (offset * den != num[:, None] * b).any():
            return None
        shift, rem = np.divmod(num[:, None] * steps[0][None, :], den)
        return None if rem.any() else shift
    fb = basis.astype(np.float64)
    coef = offset.astype(np.float64) @ fb.T @ np.linalg.inv(fb @ fb.T)
    if np.abs(coef @ fb - offset).max() > 1e-6:
        return None
    exact = coef @ steps.astype(np.float64)
    shift = np.rint(exact).astype(np.int64)
    if shift.size and np.abs(exact - shift).max() > 1e-6:
        return None
    return shift


def _copy(insns: list[Insn]) -> list[Insn]:
    """Instructions with their own field dicts."""
    return [(op, dict(f)) for op, f in insns]
