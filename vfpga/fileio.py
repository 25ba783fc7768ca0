"""Writing output files: the one atomic-write helper every command and library uses.

:func:`atomic_write` writes through a temporary file in the destination's folder and
``os.replace``: either the complete new file appears or the old one (if any) stays, and
no partial or temporary file is left behind whatever fails (full disk, missing folder,
interrupt). The file gets the usual permissions (``0o666`` less the umask; ``mkstemp``
alone would give ``0o600``). The temporary name is short and fixed-length, so any legal
file name (up to the file system's 255 bytes) can be written.

:func:`check_writable` checks a destination before long work starts (a missing folder, a
folder that is not writable, a name that is too long or is a folder), so a command fails
at once rather than after minutes of compiling or emulating.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

from vfpga.errors import VfpgaError


class OutputFileError(VfpgaError):
    """An output file cannot be written (the message names the path and why)."""


def _folder(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Raise :class:`OutputFileError` unless ``path`` can be created or replaced: its
    folder exists and is writable, ``path`` is not a folder, and its name fits the file
    system. Returns ``path`` as a :class:`Path`."""
    p = Path(path)
    folder = _folder(p)
    if not folder.is_dir():
        raise OutputFileError(f"cannot write {p}: folder {folder} does not exist")
    try:
        name_max = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    if len(os.fsencode(p.name)) > name_max:
        raise OutputFileError(f"cannot write {p}: the file name has "
                              f"{len(os.fsencode(p.name))} bytes, more than the {name_max} "
                              "the file system allows")
    try:
        if p.is_dir():
            raise OutputFileError(f"cannot write {p}: it is a folder")
    except OSError as exc:
        raise OutputFileError(f"cannot write {p}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputFileError(f"cannot write {p}: folder {folder} is not writable")
    return p


def atomic_write(path: str | os.PathLike[str],
                 data: bytes | str | Callable[[IO[bytes]], None]) -> Path:
    """Write ``data`` (bytes, text written as UTF-8, or a function writing to a binary
    file object) to ``path`` atomically (module doc). Raises :class:`OutputFileError`
    naming the path for any OSError; nothing is left behind on any failure."""
    p = Path(path)
    folder = _folder(p)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".vfpga-", suffix=".tmp", dir=folder)
    except OSError as exc:
        if not folder.is_dir():
            raise OutputFileError(f"cannot write {p}: folder {folder} does not exist") from None
        raise OutputFileError(f"cannot write {p}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OutputFileError(f"cannot write {p}: {exc.strerror or exc}") from None
        raise
    return p


#: Largest array :func:`read_npy` loads (bytes).
MAX_NPY_BYTES = 1 << 30


def read_npy(path: str | os.PathLike[str], max_bytes: int = MAX_NPY_BYTES) -> np.ndarray:
    """The array in the ``.npy`` file ``path``, after checking, without allocating, that
    its header's shape and dtype describe at most ``max_bytes`` bytes that the file holds
    (a header may declare a terabyte). No pickles. Raises :class:`VfpgaError` naming the
    file."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise VfpgaError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError) as exc:
        raise VfpgaError(f"{path}: not a readable .npy array ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise VfpgaError(f"{path}: not a single .npy array (an .npz archive?)")
    if arr.nbytes > max_bytes:
        raise VfpgaError(f"{path}: the array ({'x'.join(map(str, arr.shape))} {arr.dtype}) "
                         f"has {arr.nbytes:,} bytes, more than the {max_bytes:,} an input may "
                         "have")
    try:
        return np.array(arr)
    except (OSError, ValueError) as exc:
        raise VfpgaError(f"{path}: cannot read the array ({exc})") from None


__all__ = ["MAX_NPY_BYTES", "OutputFileError", "atomic_write", "check_writable", "read_npy"]


def source_digest() -> str:
    """The first 16 hex digits of the SHA-256 of vfpga's Python sources (paths and bytes,
    in sorted order). Caches of pickled compiler objects (benchmarks, tests) put it in their
    file names, so an object pickled by other code (a field added since) is never reused."""
    import hashlib

    h = hashlib.sha256()
    root = Path(__file__).parent
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]
