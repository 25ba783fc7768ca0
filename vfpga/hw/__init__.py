"""The one hardware description read by the compiler, the latency model and the emulator."""

from vfpga.hw.config import (
    BUFFER_NAMES,
    HardwareConfig,
    HardwareConfigError,
    list_presets,
    load_hw,
)

__all__ = ["BUFFER_NAMES", "HardwareConfig", "HardwareConfigError", "list_presets", "load_hw"]
