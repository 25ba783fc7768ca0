"""Error types shown to users. The CLI prints ``error: <message>`` and exits non-zero for
every subclass of :class:`VfpgaError`; anything else is a bug and keeps its traceback."""

from __future__ import annotations


class VfpgaError(Exception):
    """A user-facing error: bad input, bad binary, fault on the emulator."""

    exit_code: int = 2


class BinaryFormatError(VfpgaError):
    """A ``.vfb`` file is truncated, corrupt, of another version or another hardware."""


class AsmError(VfpgaError):
    """A ``.s`` assembly source is malformed (the message names file and line)."""


class DecodeError(VfpgaError):
    """An instruction word is invalid (the message names the instruction index)."""


class EmulatorFault(VfpgaError):
    """A program faulted on the emulator: out-of-region access, buffer overflow,
    dependency violation, deadlock. The message names the instruction."""


class FrontendError(VfpgaError):
    """An ONNX model cannot be imported (the message names the file and the node)."""


class CompileError(VfpgaError):
    """A model cannot be compiled for the hardware (the message names the layer)."""
