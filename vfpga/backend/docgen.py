"""Generate the tables of ``docs/isa.md`` (instruction encodings, from
:mod:`vfpga.isa.spec`) and of ``docs/binary-format.md`` (record layouts, from
:mod:`vfpga.backend.binary`), between marker comments::

    <!-- BEGIN GENERATED: NAME (python -m vfpga.backend.docgen; do not edit) -->
    ...
    <!-- END GENERATED: NAME -->

``python -m vfpga.backend.docgen`` rewrites the generated blocks in place;
``python -m vfpga.backend.docgen --check`` exits 1 and names the stale files instead
(``tests/test_docs.py`` runs the check).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from vfpga.backend.binary import (
    RECORD_TABLES,
    SECTION_DOCS,
    SECTION_DTYPES,
    SECTION_ORDER,
    SectionKind,
)
from vfpga.isa.spec import (
    DEP_NAMES,
    FLAG_FIELDS,
    HEADER_FIELDS,
    INSN_BYTES,
    LOAD_TARGETS,
    MODULE_OF,
    PAYLOAD_FIELDS,
    SAVE_SOURCES,
    Act,
    Buffer,
    EltOp,
    Field,
    Opcode,
    PoolMode,
    used_payload_mask,
)

#: Repository root (the docs live in ``ROOT / "docs"``).
ROOT = Path(__file__).resolve().parents[2]


def begin_marker(name: str) -> str:
    return f"<!-- BEGIN GENERATED: {name} (python -m vfpga.backend.docgen; do not edit) -->"


def end_marker(name: str) -> str:
    return f"<!-- END GENERATED: {name} -->"


def type_name(np_type: str) -> str:
    """A numpy type code as a C-like name: ``<u4`` -> ``u32``, ``(4,)<u4`` -> ``u32[4]``,
    ``S8`` -> ``char[8]``."""
    dt = np.dtype(np_type)
    if dt.subdtype is not None:
        base, shape = dt.subdtype
        return f"{type_name(base.str)}[{'x'.join(map(str, shape))}]"
    if dt.kind == "S":
        return f"char[{dt.itemsize}]"
    kind = {"u": "u", "i": "i", "f": "f"}[dt.kind]
    return f"{kind}{dt.itemsize * 8}"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    return out


def _field_rows(fields: Sequence[Field]) -> list[tuple[object, ...]]:
    return [(f.offset, f.size, type_name(f.np_type), f"`{f.name}`", f.doc) for f in fields]


def _ranges(mask: np.ndarray) -> str:
    parts = []
    i = 0
    while i < len(mask):
        if mask[i]:
            j = i
            while j + 1 < len(mask) and mask[j + 1]:
                j += 1
            parts.append(f"{i}" if i == j else f"{i}..{j}")
            i = j + 1
        else:
            i += 1
    return ", ".join(parts) if parts else "none"


_DEP_MEANING = {
    "wait_prev": "pop one token pushed by the previous module before starting",
    "wait_next": "pop one token pushed by the next module before starting",
    "signal_prev": "push one token to the previous module after completing",
    "signal_next": "push one token to the next module after completing",
}


def isa_tables() -> str:
    """The encoding tables of every opcode (markdown)."""
    out: list[str] = []
    out += [f"Every instruction is one {INSN_BYTES}-byte little-endian word. Offsets are byte "
            "offsets in the word; types are little-endian integers (`u`nsigned / `i` signed, "
            "width in bits) or `f32`, an IEEE-754 binary32 float (ISA version 2).", "",
            "#### Header (all opcodes)", ""]
    out += _md_table(("byte", "size", "type", "field", "meaning"), _field_rows(HEADER_FIELDS))
    out += ["", "#### Dependency bits (header byte 4)", ""]
    out += _md_table(("bit", "assembly name", "meaning"),
                     [(int(d).bit_length() - 1, f"`{n}`", _DEP_MEANING[n])
                      for n, d in DEP_NAMES.items()])
    out += ["", "#### Opcodes", ""]
    out += _md_table(("opcode", "mnemonic", "module", "payload fields", "flag fields"),
                     [(int(op), f"`{op.name.lower()}`", MODULE_OF[op].name,
                       len(PAYLOAD_FIELDS[op]), len(FLAG_FIELDS[op])) for op in Opcode])
    for op in Opcode:
        out += ["", f"#### {op.name} (opcode {int(op)}, `{op.name.lower()}`, "
                f"{MODULE_OF[op].name} module)", ""]
        if PAYLOAD_FIELDS[op]:
            out += _md_table(("byte", "size", "type", "field", "meaning"),
                             _field_rows(PAYLOAD_FIELDS[op]))
        else:
            out.append("No payload fields.")
        if FLAG_FIELDS[op]:
            out += ["", "Flag fields (header byte 5):", ""]
            rows = []
            for ff in FLAG_FIELDS[op]:
                bits = (f"{ff.shift}" if ff.width == 1
                        else f"{ff.shift}..{ff.shift + ff.width - 1}")
                if ff.enum is None:
                    values = f"0..{(1 << ff.width) - 1}"
                else:
                    members = list(ff.enum)
                    if op is Opcode.LOAD:
                        members = list(LOAD_TARGETS)
                    elif op is Opcode.SAVE:
                        members = list(SAVE_SOURCES)
                    values = ", ".join(f"{int(m)} `{m.name.lower()}`" for m in members)
                rows.append((bits, f"`{ff.name}`", values, ff.doc))
            out += _md_table(("bits", "field", "values", "meaning"), rows)
        flag_bits = 0
        for ff in FLAG_FIELDS[op]:
            flag_bits |= ff.mask
        unused = ~used_payload_mask(op)
        out += ["", f"Bytes that must be zero: {_ranges(unused)}; flag bits that must be zero: "
                f"{_ranges(np.array([not (flag_bits >> b) & 1 for b in range(8)]))}."]
    out += ["", "#### Enumerations", ""]
    for enum in (Buffer, Act, PoolMode, EltOp):
        out += _md_table((f"{enum.__name__} value", "assembly name"),
                         [(int(m), f"`{m.name.lower()}`") for m in enum])
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def binary_tables() -> str:
    """The record layouts of the ``.vfb`` container (markdown)."""
    out: list[str] = ["#### Section kinds", ""]
    out += _md_table(("kind", "name", "record size", "writer order", "contents"),
                     [(int(k), f"`{k.name}`", _record_size(k), SECTION_ORDER.index(k) + 1,
                       SECTION_DOCS[k]) for k in SectionKind])
    for name, (fields, size) in RECORD_TABLES.items():
        out += ["", f"#### {name} record ({size} bytes)" if name not in ("header",
                "directory entry") else f"#### {name} ({size} bytes)", ""]
        out += _md_table(("offset", "size", "type", "field", "meaning"), _field_rows(fields))
    return "\n".join(out).rstrip() + "\n"


def _record_size(kind: SectionKind) -> str:
    if kind in SECTION_DTYPES:
        return f"{SECTION_DTYPES[kind].itemsize}"
    return f"{INSN_BYTES} (one instruction)" if kind is SectionKind.TEXT else "bytes"


#: Generated blocks per document (path relative to :data:`ROOT`).
GENERATED: dict[str, dict[str, Callable[[], str]]] = {
    "docs/isa.md": {"encoding": isa_tables},
    "docs/binary-format.md": {"records": binary_tables},
}


def render(text: str, blocks: dict[str, Callable[[], str]], source: str) -> str:
    """``text`` with every generated block replaced by its current content."""
    for name, make in blocks.items():
        pattern = re.compile(re.escape(begin_marker(name)) + r"\n.*?" + re.escape(end_marker(name)),
                             re.DOTALL)
        m = pattern.search(text)
        if m is None:
            raise ValueError(f"{source}: markers of the generated block '{name}' not found:\n"
                             f"{begin_marker(name)}\n{end_marker(name)}")
        block = f"{begin_marker(name)}\n{make()}{end_marker(name)}"
        text = text[: m.start()] + block + text[m.end() :]
    return text


def stale_files(root: Path = ROOT) -> list[str]:
    """Documents whose generated blocks differ from what the code generates now."""
    stale = []
    for rel, blocks in GENERATED.items():
        path = root / rel
        text = path.read_text(encoding="utf-8")
        if render(text, blocks, rel) != text:
            stale.append(rel)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vfpga.backend.docgen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if a generated block is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for rel in stale:
            print(f"{rel}: generated tables are stale; run: python -m vfpga.backend.docgen",
                  file=sys.stderr)
        return 1 if stale else 0
    for rel, blocks in GENERATED.items():
        path = ROOT / rel
        text = path.read_text(encoding="utf-8")
        new = render(text, blocks, rel)
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"updated {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
