"""Backend: the ``.vfb`` binary container (:mod:`vfpga.backend.binary`), the assembler
(:mod:`vfpga.backend.asm`) and the disassembler / objdump (:mod:`vfpga.backend.disasm`).
The formats are specified in ``docs/binary-format.md`` and ``docs/isa.md``."""
