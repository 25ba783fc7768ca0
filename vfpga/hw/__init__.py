"""The one hardware description read by the compiler, the latency model and the emulator
(:mod:`vfpga.hw.config`, with the default preset name :data:`DEFAULT_HW`), and the
per-instruction cycle costs they charge (:mod:`vfpga.hw.costs`)."""

from vfpga.hw.config import (
    BUFFER_NAMES,
    DEFAULT_HW,
    HardwareConfig,
    HardwareConfigError,
    list_presets,
    load_hw,
)

__all__ = [
    "BUFFER_NAMES",
    "DEFAULT_HW",
    "HardwareConfig",
    "HardwareConfigError",
    "list_presets",
    "load_hw",
]
