"""Parsing of core sets given on the command line: ``4`` (the first four cores),
``0-7``, ``0,3,5`` or ``0-3,8``."""

from __future__ import annotations

from vfpga.errors import VfpgaError


def parse_cores(spec: str, num_cores: int) -> list[int]:
    """Physical core indices named by ``spec`` (see module docstring), validated against
    a pool of ``num_cores`` cores."""
    s = spec.strip()
    if not s:
        raise VfpgaError("empty core set")
    if s.isdigit() and "," not in s:
        n = int(s)
        if not 1 <= n <= num_cores:
            raise VfpgaError(f"--cores {spec}: need 1..{num_cores} cores")
        return list(range(n))
    cores: list[int] = []
    for part in s.split(","):
        part = part.strip()
        try:
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
                if b < a:
                    raise ValueError
                cores.extend(range(a, b + 1))
            else:
                cores.append(int(part))
        except ValueError:
            raise VfpgaError(
                f"--cores {spec}: '{part}' is not a core index or range (examples: 4, 0-7, 0,3,5)"
            ) from None
    bad = sorted({c for c in cores if not 0 <= c < num_cores})
    if bad:
        raise VfpgaError(f"--cores {spec}: cores {bad} do not exist (0..{num_cores - 1})")
    if len(set(cores)) != len(cores):
        raise VfpgaError(f"--cores {spec}: a core is named twice")
    return cores
