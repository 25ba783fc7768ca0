"""docs/isa.md and docs/binary-format.md: generated tables up to date, and the
hand-written parts consistent with the code."""

from __future__ import annotations

import re

import pytest

from vfpga.backend.asm import Assembler, assemble
from vfpga.backend.docgen import GENERATED, ROOT, begin_marker, end_marker, render, stale_files
from vfpga.isa.spec import FLAG_FIELDS, PAYLOAD_FIELDS, Opcode


def test_generated_tables_are_current() -> None:
    stale = stale_files()
    assert not stale, (
        f"generated tables in {', '.join(stale)} are stale (the ISA or the binary format "
        "changed); regenerate them with: python -m vfpga.backend.docgen"
    )


@pytest.mark.parametrize("rel", sorted(GENERATED))
def test_stale_block_is_detected(rel: str) -> None:
    text = (ROOT / rel).read_text(encoding="utf-8")
    name = next(iter(GENERATED[rel]))
    broken = text.replace(end_marker(name), "| stale row |\n" + end_marker(name))
    assert render(broken, GENERATED[rel], rel) == text
    with pytest.raises(ValueError, match="markers"):
        render(text.replace(begin_marker(name), ""), GENERATED[rel], rel)


def test_isa_doc_covers_every_opcode_field_and_flag() -> None:
    text = (ROOT / "docs/isa.md").read_text(encoding="utf-8")
    for op in Opcode:
        assert f"`{op.name.lower()}`" in text
        for f in PAYLOAD_FIELDS[op]:
            assert f"`{f.name}`" in text, f"{op.name}.{f.name} not documented"
        for ff in FLAG_FIELDS[op]:
            assert f"`{ff.name}`" in text
    for directive in [m[3:] for m in dir(Assembler) if m.startswith("_d_")]:
        assert f"`.{directive}" in text, f"directive .{directive} not documented"


def test_isa_doc_examples_assemble() -> None:
    text = (ROOT / "docs/isa.md").read_text(encoding="utf-8")
    examples = [line.strip() for line in text.splitlines()
                if re.match(r"\s{4}(load|conv|pool|eltwise|save|sync|end) \w+=", line)]
    assert examples
    for line in examples:
        src = ".layer a kind=conv\n.layer b kind=conv\n.layer c kind=conv\n.layer d kind=conv\n"
        assert assemble(src + line + "\n", "docs/isa.md").num_insns == 1


def test_binary_doc_names_every_section() -> None:
    from vfpga.backend.binary import SectionKind

    text = (ROOT / "docs/binary-format.md").read_text(encoding="utf-8")
    for kind in SectionKind:
        assert f"**{kind.name}.**" in text
