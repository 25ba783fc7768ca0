"""DDR memory of the pool: one byte array, carved into per-tenant regions.

A :class:`Region` is a tenant's window ``[base, base + bound)``. Instructions address DDR
relative to the base; every access is checked against the bound *before* it is performed
(numpy slicing would silently clip), so a faulty tenant can never read or write another
tenant's bytes.
"""

from __future__ import annotations

import numpy as np

#: Regions are aligned to this many bytes.
REGION_ALIGN = 4096


class Region:
    """A tenant's DDR window ``[base, base + bound)`` of the DDR.

    :attr:`mem` is the window's bytes, writable by whoever asks for it; every access to it
    counts (:attr:`handed_out`), as a possible write. The emulator's fast path derives
    values from DDR bytes (prepared weights and parameters) and reuses them while the
    bytes are unchanged: it may skip comparing them again only while :attr:`handed_out`
    is unchanged and no SAVE of the loaded program can reach them (the only other writers:
    the instructions' own views of :meth:`box_view`, and :meth:`view`)."""

    __slots__ = ("_mem", "base", "bound", "handed_out")

    def __init__(self, base: int, bound: int, mem: np.ndarray) -> None:
        self.base = base
        self.bound = bound
        self._mem = mem
        #: accesses to :attr:`mem` so far (each may have written any byte)
        self.handed_out = 0

    def __repr__(self) -> str:
        return f"Region(base=0x{self.base:x}, bound=0x{self.bound:x})"

    @property
    def mem(self) -> np.ndarray:
        """The window's bytes (counted in :attr:`handed_out`: the caller may write them)."""
        self.handed_out += 1
        return self._mem

    def view(self) -> np.ndarray:
        """The window's bytes for the emulator's instructions, not counted: only to read, or
        to write what a SAVE of the loaded program writes."""
        return self._mem

    def box_extent(self, ddr: int, n0: int, n1: int, n2: int, s0: int, s1: int) -> tuple[int, int]:
        """First and one-past-last byte offset a strided box touches."""
        if n0 == 0 or n1 == 0 or n2 == 0:
            return ddr, ddr
        return ddr, ddr + (n0 - 1) * s0 + (n1 - 1) * s1 + n2

    def box_view(self, ddr: int, n0: int, n1: int, n2: int, s0: int, s1: int) -> np.ndarray:
        """A strided ``(n0, n1, n2)`` view of the box; the caller has checked the extent."""
        return np.lib.stride_tricks.as_strided(
            self._mem[ddr:], shape=(n0, n1, n2), strides=(s0, s1, 1), writeable=True
        )


class DDR:
    """The pool's DDR as one lazily-zeroed byte array with a first-fit region allocator.

    The array comes from the operating system zeroed and untouched; allocating a region
    zeroes only the part of it that an earlier region may have written (below the high
    mark), so a region's pages cost memory only once the program touches them.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.mem = np.zeros(size, dtype=np.uint8)
        self._regions: dict[int, int] = {}  # base -> bound
        self._high = 0  # bytes at and above this offset were never part of a region

    def fits(self, nbytes: int) -> bool:
        """Whether :meth:`allocate` of ``nbytes`` would succeed now."""
        need = self._need(nbytes)
        return self._first_fit(need) + need <= self.size

    @staticmethod
    def _need(nbytes: int) -> int:
        return max(REGION_ALIGN, -(-nbytes // REGION_ALIGN) * REGION_ALIGN)

    def _first_fit(self, need: int) -> int:
        cursor = 0
        for base in sorted(self._regions):
            if base - cursor >= need:
                break
            cursor = base + self._regions[base]
        return cursor

    def allocate(self, nbytes: int) -> Region:
        """Reserve a zeroed region of at least ``nbytes`` bytes (aligned)."""
        need = self._need(nbytes)
        cursor = self._first_fit(need)
        if cursor + need > self.size:
            raise MemoryError(
                f"DDR exhausted: need {need} bytes, {self.size - self.used()} free of {self.size}"
            )
        self._regions[cursor] = need
        self.mem[cursor : min(cursor + need, self._high)] = 0
        self._high = max(self._high, cursor + need)
        return Region(cursor, need, self.mem[cursor : cursor + need])

    def free(self, region: Region) -> None:
        """Release a region (its bytes are zeroed on the next allocation)."""
        if self._regions.get(region.base) == region.bound:
            del self._regions[region.base]

    def reclaim(self, region: Region) -> None:
        """Take back ``region`` exactly as it was (base, bound, bytes) after a :meth:`free`
        that must be undone; raises MemoryError if another region took part of it."""
        lo, hi = region.base, region.base + region.bound
        for base, bound in self._regions.items():
            if base < hi and lo < base + bound:
                raise MemoryError(f"DDR [0x{lo:x}, 0x{hi:x}) is no longer free")
        self._regions[region.base] = region.bound

    def used(self) -> int:
        """Bytes currently allocated to regions."""
        return sum(self._regions.values())
