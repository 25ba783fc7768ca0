"""Hardware configuration shared by the compiler, the latency model and the emulator.

A configuration is a JSON document (presets live in ``vfpga/hw/presets``) describing the
accelerator pool: core geometry, clock, on-chip buffer sizes, DDR banks and fixed costs.
Every binary carries the :attr:`HardwareConfig.fingerprint` of the configuration it was
compiled for; the loader refuses a binary whose fingerprint differs from the target's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

#: On-chip buffers of one core, in the order of their buffer ids in the ISA.
#: ``ibuf`` input feature maps (int8), ``wbuf`` weights (int8), ``pbuf`` per-output-channel
#: parameter records (bias int32, scale float32, divisor float32; 12 bytes little-endian
#: per channel, ISA version 2), ``obuf`` output feature
#: maps (int8), ``abuf`` int32 partial sums for convolutions split along input channels.
BUFFER_NAMES: tuple[str, ...] = ("ibuf", "wbuf", "pbuf", "obuf", "abuf")

#: Version of the instruction set; part of the fingerprint. Version 2 requantizes in
#: float32 steps (pbuf records (bias, scale, divisor); float POOL/ELTWISE fields).
#: Version 3 adds issue 14's operations (docs/isa.md); version 4 the RESIZE instruction
#: (bilinear interpolation, opcode 8); version 5 the CONV ``fsum`` mode (transposed
#: convolutions summed in float32 as onnxruntime's ConvTranspose does).
ISA_VERSION = 5


class HardwareConfigError(ValueError):
    """A hardware configuration is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class Costs:
    """Fixed per-instruction costs of the timing and latency models, in core cycles."""

    load_setup_cycles: int = 32
    calc_setup_cycles: int = 16
    save_setup_cycles: int = 32
    sync_cycles: int = 64
    dispatch_cycles_per_insn: int = 1


@dataclass(frozen=True)
class HardwareConfig:
    """The accelerator pool.

    A core computes ``pixel_parallel`` output pixels x ``in_channel_parallel`` input
    channels x ``out_channel_parallel`` output channels multiply-accumulates per cycle;
    ``ops_per_cycle`` counts a MAC as two operations. Cores ``i`` with
    ``bank_mapping == "grouped"`` sit on DDR bank ``i // cores_per_bank`` and share its
    bandwidth; with ``"interleaved"`` every core's traffic is spread over all banks.
    """

    name: str
    description: str
    num_cores: int
    pixel_parallel: int
    in_channel_parallel: int
    out_channel_parallel: int
    clock_mhz: float
    buffers: dict[str, int]
    ddr_banks: int
    bank_bandwidth_gbps: float
    cores_per_bank: int
    bank_mapping: str
    ddr_bytes_per_bank: int
    costs: Costs = field(default_factory=Costs)

    # ------------------------------------------------------------------ derived
    @property
    def macs_per_cycle(self) -> int:
        """Multiply-accumulates one core performs per cycle at full utilisation."""
        return self.pixel_parallel * self.in_channel_parallel * self.out_channel_parallel

    @property
    def ops_per_cycle(self) -> int:
        """Operations per cycle of one core (a MAC is two operations)."""
        return 2 * self.macs_per_cycle

    @property
    def ddr_bytes(self) -> int:
        """Total DDR capacity of the pool."""
        return self.ddr_banks * self.ddr_bytes_per_bank

    def bank_of_core(self, core: int) -> int | None:
        """DDR bank of a physical core, or ``None`` when its traffic is interleaved."""
        if not 0 <= core < self.num_cores:
            raise HardwareConfigError(f"core {core} is not in 0..{self.num_cores - 1}")
        if self.bank_mapping == "interleaved":
            return None
        return core // self.cores_per_bank

    def core_bandwidth_bytes_per_cycle(self) -> float:
        """DDR bytes per cycle one core gets when it is alone on its bank(s)."""
        banks = self.ddr_banks if self.bank_mapping == "interleaved" else 1
        return banks * self.bank_bandwidth_gbps * 1e9 / (self.clock_mhz * 1e6)

    def buffer_size(self, name: str) -> int:
        """Size in bytes of the on-chip buffer ``name`` (one of :data:`BUFFER_NAMES`)."""
        return self.buffers[name]

    # ------------------------------------------------------------- fingerprint
    def to_dict(self) -> dict[str, Any]:
        """The configuration as a JSON-compatible dict (the preset file format)."""
        return dataclasses.asdict(self)

    @property
    def fingerprint(self) -> bytes:
        """32-byte SHA-256 over the canonical JSON of every field but name and description.

        Any change that could invalidate a compiled binary (geometry, buffers, cores,
        banks, costs, the ISA version) changes the fingerprint.
        """
        d = self.to_dict()
        d.pop("name")
        d.pop("description")
        d["isa_version"] = ISA_VERSION
        canon = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(canon).digest()

    # ------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise :class:`HardwareConfigError` if the configuration is inconsistent."""
        positive = {
            "num_cores": self.num_cores,
            "pixel_parallel": self.pixel_parallel,
            "in_channel_parallel": self.in_channel_parallel,
            "out_channel_parallel": self.out_channel_parallel,
            "ddr_banks": self.ddr_banks,
            "cores_per_bank": self.cores_per_bank,
            "ddr_bytes_per_bank": self.ddr_bytes_per_bank,
        }
        for key, value in positive.items():
            if not isinstance(value, int) or value <= 0:
                raise HardwareConfigError(f"{self.name}: '{key}' must be a positive integer")
        if self.clock_mhz <= 0 or self.bank_bandwidth_gbps <= 0:
            raise HardwareConfigError(f"{self.name}: clock and bandwidth must be positive")
        missing = [b for b in BUFFER_NAMES if b not in self.buffers]
        if missing:
            raise HardwareConfigError(f"{self.name}: buffers {missing} are not sized")
        for b, size in self.buffers.items():
            if b not in BUFFER_NAMES:
                raise HardwareConfigError(
                    f"{self.name}: unknown buffer '{b}' (known: {', '.join(BUFFER_NAMES)})"
                )
            if not isinstance(size, int) or size <= 0 or size % 64:
                raise HardwareConfigError(
                    f"{self.name}: buffer '{b}' size must be a positive multiple of 64 bytes"
                )
        if self.bank_mapping not in ("grouped", "interleaved"):
            raise HardwareConfigError(
                f"{self.name}: bank_mapping must be 'grouped' or 'interleaved'"
            )
        if self.bank_mapping == "grouped" and self.num_cores > self.ddr_banks * self.cores_per_bank:
            raise HardwareConfigError(
                f"{self.name}: {self.num_cores} cores do not fit on {self.ddr_banks} banks of "
                f"{self.cores_per_bank} cores"
            )
        if self.num_cores > 64:
            raise HardwareConfigError(f"{self.name}: at most 64 cores (6-bit core index)")

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "<dict>") -> HardwareConfig:
        """Build and validate a configuration from a dict in the preset file format."""
        try:
            fields = dict(d)
            fields["costs"] = Costs(**fields.get("costs", {}))
            fields.setdefault("description", "")
            hw = cls(**fields)
        except TypeError as exc:
            raise HardwareConfigError(f"{source}: not a hardware configuration: {exc}") from None
        hw.validate()
        return hw


#: The preset used when no hardware is named: the paper's 16-core pool. Every default
#: ``hw`` argument, option and scenario key refers to this one name.
DEFAULT_HW = "pool16"


def list_presets() -> list[str]:
    """Names of the bundled presets."""
    folder = resources.files("vfpga.hw") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def load_hw(name_or_path: str | Path = DEFAULT_HW) -> HardwareConfig:
    """Load a preset by name (``pool16``, ``large1``) or a configuration JSON file by path."""
    text: str
    source = str(name_or_path)
    if str(name_or_path) in list_presets():
        text = (resources.files("vfpga.hw") / "presets" / f"{name_or_path}.json").read_text()
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise HardwareConfigError(
                f"unknown hardware '{name_or_path}': not a preset ({', '.join(list_presets())}) "
                "and not a JSON file"
            )
        text = path.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HardwareConfigError(f"{source}: invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HardwareConfigError(f"{source}: expected a JSON object")
    return HardwareConfig.from_dict(data, source)
