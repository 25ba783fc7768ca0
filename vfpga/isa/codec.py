"""Encoding and decoding of instruction words.

:func:`decode` turns an instruction blob into a :class:`Program` once: the raw words as a
``(n, 64)`` byte array, the header fields as arrays, and per opcode a structured array of
its instructions with their indices. Every word is validated (known opcode, reserved bits
zero, dependency bits legal for its module, flag values in range, unused bytes zero), and
a bad word raises :class:`~vfpga.errors.DecodeError` naming its index.

Float32 fields (:data:`~vfpga.isa.spec.FLOAT_FIELDS`: the requantization constants of POOL
and ELTWISE) are encoded from Python or numpy floats rounded to the nearest float32 (a
value that is already a float32 is stored exactly); NaN and infinities are rejected with
a ``ValueError`` naming the field. The decoder does not judge their values (a non-finite
constant is an invalid-parameter fault when the instruction executes) and returns them as
Python floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from vfpga.errors import DecodeError
from vfpga.isa.limits import DEP_BITS, ILLEGAL_DEPS
from vfpga.isa.spec import (
    FLAG_FIELDS,
    FLOAT_FIELDS,
    HEADER_DTYPE,
    INSN_BYTES,
    LOAD_TARGETS,
    MODULE_OF,
    OPCODE_DTYPES,
    PAYLOAD_FIELDS,
    SAVE_SOURCES,
    Opcode,
    used_payload_mask,
)


def float32_value(op: Opcode, name: str, value: Any) -> float:
    """``value`` as the float32 stored in field ``name`` of ``op`` (nearest float32, as a
    Python float); ``ValueError`` naming the field for a non-number, NaN, an infinity or a
    finite value beyond the float32 range."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{op.name}: field '{name}' must be a number, got {value!r}") from None
    if not np.isfinite(v):
        raise ValueError(f"{op.name}: field '{name}'={v} is not finite (float32 fields must "
                         "be finite)")
    with np.errstate(over="ignore"):
        f = np.float32(v)
    if not np.isfinite(f):
        raise ValueError(f"{op.name}: field '{name}'={v!r} is beyond the float32 range")
    return float(f)


def _float_column(op: Opcode, name: str, values: list[Any]) -> np.ndarray:
    """A column of float32 field values (each checked as by :func:`float32_value`)."""
    try:
        col = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        for v in values:
            float32_value(op, name, v)
        raise  # pragma: no cover - float32_value raises first
    with np.errstate(over="ignore"):
        out = col.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        float32_value(op, name, values[int(bad[0])])
    return out


def encode_one(op: Opcode, /, **fields: Any) -> bytes:
    """Encode one instruction. ``fields`` are header and payload field names of ``op``;
    flag sub-fields (for example ``act`` of CONV) are given by name and packed into
    ``flags``; float32 fields take any finite number (see the module docstring). Unknown
    names, out-of-range integers and non-finite floats raise :class:`ValueError`."""
    arr = np.zeros(1, dtype=OPCODE_DTYPES[op])
    arr["opcode"] = int(op)
    flag_fields = {f.name: f for f in FLAG_FIELDS[op]}
    floats = FLOAT_FIELDS[op]
    flags = int(fields.pop("flags", 0))
    for name, value in fields.items():
        if name in floats:
            arr[name] = float32_value(op, name, value)
        elif name in flag_fields:
            ff = flag_fields[name]
            v = int(value)
            if v < 0 or v >= (1 << ff.width):
                raise ValueError(f"{op.name}: flag field '{name}'={v} does not fit {ff.width} bits")
            flags |= v << ff.shift
        elif name in arr.dtype.names and name != "opcode":
            info = np.iinfo(arr.dtype[name])
            v = int(value)
            if not info.min <= v <= info.max:
                raise ValueError(
                    f"{op.name}: field '{name}'={v} out of range [{info.min}, {info.max}]"
                )
            arr[name] = v
        else:
            raise ValueError(f"{op.name} has no field '{name}'")
    arr["flags"] = flags
    return arr.tobytes()


def flag_value(op: Opcode, flags: int | np.ndarray, name: str) -> int | np.ndarray:
    """Extract the flag sub-field ``name`` of ``op`` from ``flags``."""
    for ff in FLAG_FIELDS[op]:
        if ff.name == name:
            return (flags >> ff.shift) & ((1 << ff.width) - 1)
    raise KeyError(f"{op.name} has no flag field '{name}'")


@dataclass
class Program:
    """A decoded instruction blob.

    ``opcode``, ``core``, ``layer``, ``deps``, ``flags``: header arrays, one entry per
    instruction. ``words``: the raw words, shape ``(n, 64)``. ``by_op[op]``: structured
    array of the instructions with opcode ``op`` and ``index_of[op]`` their positions,
    ``slot`` the position of each instruction within its opcode's array.
    """

    words: np.ndarray
    opcode: np.ndarray
    core: np.ndarray
    layer: np.ndarray
    deps: np.ndarray
    flags: np.ndarray
    by_op: dict[Opcode, np.ndarray]
    index_of: dict[Opcode, np.ndarray]
    slot: np.ndarray

    def __len__(self) -> int:
        return int(self.opcode.shape[0])

    def insn(self, i: int) -> np.void:
        """The structured record of instruction ``i`` (typed by its opcode)."""
        op = Opcode(int(self.opcode[i]))
        return self.by_op[op][self.slot[i]]

    def fields(self, i: int) -> dict[str, int | float]:
        """All header, payload and flag fields of instruction ``i`` as a dict (float32
        fields as Python floats, the others as ints)."""
        op = Opcode(int(self.opcode[i]))
        rec = self.insn(i)
        floats = FLOAT_FIELDS[op]
        out: dict[str, int | float] = {
            name: float(rec[name]) if name in floats else int(rec[name])
            for name in rec.dtype.names or () if name != "reserved"
        }
        for ff in FLAG_FIELDS[op]:
            out[ff.name] = int(flag_value(op, int(out["flags"]), ff.name))
        return out


def decode(blob: bytes | bytearray | memoryview | np.ndarray, base_index: int = 0) -> Program:
    """Decode and validate an instruction blob (a multiple of 64 bytes).

    ``base_index`` is added to instruction indices in error messages (for blobs that are
    slices of a larger program).
    """
    raw = np.frombuffer(blob, dtype=np.uint8) if not isinstance(blob, np.ndarray) else blob
    if raw.size % INSN_BYTES:
        raise DecodeError(
            f"instruction blob of {raw.size} bytes is not a multiple of {INSN_BYTES}"
        )
    words = raw.reshape(-1, INSN_BYTES)
    hdr = words.view(HEADER_DTYPE).reshape(-1) if words.size else np.zeros(0, HEADER_DTYPE)
    opcode = hdr["opcode"].astype(np.int64)
    valid_ops = np.isin(opcode, [int(o) for o in Opcode])
    if not valid_ops.all():
        i = int(np.flatnonzero(~valid_ops)[0])
        raise DecodeError(
            f"instruction #{i + base_index}: invalid opcode {int(opcode[i])} "
            f"(valid: {', '.join(f'{o.value}={o.name}' for o in Opcode)})"
        )
    bad_res = np.flatnonzero(hdr["reserved"] != 0)
    if bad_res.size:
        raise DecodeError(f"instruction #{int(bad_res[0]) + base_index}: reserved header bits set")
    by_op: dict[Opcode, np.ndarray] = {}
    index_of: dict[Opcode, np.ndarray] = {}
    slot = np.zeros(len(opcode), dtype=np.int64)
    deps = hdr["deps"].astype(np.int64)
    flags = hdr["flags"].astype(np.int64)
    for op in Opcode:
        idx = np.flatnonzero(opcode == int(op))
        index_of[op] = idx
        slot[idx] = np.arange(idx.size)
        sub = words[idx]
        by_op[op] = np.ascontiguousarray(sub).view(OPCODE_DTYPES[op]).reshape(-1)
        if not idx.size:
            continue
        unused = ~used_payload_mask(op)
        nz = np.flatnonzero((sub[:, unused] != 0).any(axis=1))
        if nz.size:
            raise DecodeError(
                f"instruction #{int(idx[nz[0]]) + base_index} ({op.name}): bytes outside its "
                "fields are not zero (corrupt word?)"
            )
        illegal = ILLEGAL_DEPS[MODULE_OF[op]]
        bad = np.flatnonzero((deps[idx] & illegal) | (deps[idx] & ~DEP_BITS))
        if bad.size:
            raise DecodeError(
                f"instruction #{int(idx[bad[0]]) + base_index} ({op.name}): dependency bits "
                f"0x{int(deps[idx[bad[0]]]):x} not allowed for the "
                f"{MODULE_OF[op].name} module"
            )
        used_flags = 0
        for ff in FLAG_FIELDS[op]:
            used_flags |= ff.mask
            if ff.enum is not None:
                vals = (flags[idx] >> ff.shift) & ((1 << ff.width) - 1)
                ok = np.isin(vals, [int(e) for e in ff.enum])
                if op is Opcode.LOAD:
                    ok &= np.isin(vals, [int(b) for b in LOAD_TARGETS])
                if op is Opcode.SAVE:
                    ok &= np.isin(vals, [int(b) for b in SAVE_SOURCES])
                if not ok.all():
                    j = int(np.flatnonzero(~ok)[0])
                    raise DecodeError(
                        f"instruction #{int(idx[j]) + base_index} ({op.name}): invalid "
                        f"'{ff.name}' value {int(vals[j])}"
                    )
        bad = np.flatnonzero(flags[idx] & ~used_flags)
        if bad.size:
            raise DecodeError(
                f"instruction #{int(idx[bad[0]]) + base_index} ({op.name}): unknown flag bits"
            )
    return Program(
        words=words,
        opcode=opcode,
        core=hdr["core"].astype(np.int64),
        layer=hdr["layer"].astype(np.int64),
        deps=deps,
        flags=flags,
        by_op=by_op,
        index_of=index_of,
        slot=slot,
    )


def payload_field_names(op: Opcode) -> list[str]:
    """Names of ``op``'s payload fields in word order."""
    return [f.name for f in PAYLOAD_FIELDS[op]]


def encode_batch(insns: list[tuple[Opcode, dict[str, Any]]]) -> bytes:
    """Encode many instructions at once (one structured array per opcode, filled column
    by column). Each dict holds header, payload and flag fields by name, as for
    :func:`encode_one`; missing fields are 0. Values are range-checked per column (float32
    fields: finite, see :func:`float32_value`)."""
    n = len(insns)
    out = np.zeros((n, INSN_BYTES), dtype=np.uint8)
    by_op: dict[Opcode, list[int]] = {}
    for i, (op, _) in enumerate(insns):
        by_op.setdefault(op, []).append(i)
    for op, idx in by_op.items():
        dt = OPCODE_DTYPES[op]
        arr = np.zeros(len(idx), dtype=dt)
        arr["opcode"] = int(op)
        dicts = [insns[i][1] for i in idx]
        keys: set[str] = set().union(*dicts)
        flag_fields = {f.name: f for f in FLAG_FIELDS[op]}
        flags = np.zeros(len(idx), dtype=np.int64)
        floats = FLOAT_FIELDS[op]
        for key in keys:  # (each column read with dict.get mapped over the dicts, in C)
            if key in floats:
                arr[key] = _float_column(op, key, list(map(dict.get, dicts, repeat(key),
                                                           repeat(0.0))))
                continue
            col = np.fromiter(map(dict.get, dicts, repeat(key), repeat(0)), dtype=np.int64,
                              count=len(dicts))
            if key in flag_fields:
                ff = flag_fields[key]
                if (col < 0).any() or (col >= (1 << ff.width)).any():
                    raise ValueError(f"{op.name}: flag field '{key}' out of range")
                flags |= col << ff.shift
            elif key == "flags":
                flags |= col
            elif key in (dt.names or ()) and key != "opcode":
                info = np.iinfo(dt[key])
                if col.size and (col.min() < info.min or col.max() > info.max):
                    j = int(np.flatnonzero((col < info.min) | (col > info.max))[0])
                    raise ValueError(
                        f"{op.name}: field '{key}'={int(col[j])} out of range "
                        f"[{info.min}, {info.max}]"
                    )
                arr[key] = col
            else:
                raise ValueError(f"{op.name} has no field '{key}'")
        arr["flags"] = flags
        out[np.asarray(idx)] = arr.view(np.uint8).reshape(len(idx), INSN_BYTES)
    return out.tobytes()
