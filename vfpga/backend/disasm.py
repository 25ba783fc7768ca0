"""Disassembler and ``objdump`` listing of ``.vfb`` binaries.

:func:`disassemble` turns a :class:`~vfpga.backend.binary.VfbFile` into ``.s`` text that
:func:`vfpga.backend.asm.assemble` turns back into the same bytes (with ``full_data``;
without it the DATA blob is only summarised). :func:`objdump` adds, as ``;`` comments,
the header, the section table and the layer, IFP and tensor tables, so its output is
still valid assembly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import numpy as np

from vfpga.backend.binary import (
    BEFORE_FIRST_LAYER,
    IFP_BUFFERS,
    SECTION_DTYPES,
    HostOp,
    Tensor,
    VfbFile,
    canonical_json,
    from_bytes,
    read_header,
)
from vfpga.hw.config import HardwareConfig
from vfpga.isa.spec import DEP_NAMES, FLAG_FIELDS, FLOAT_FIELDS, PAYLOAD_FIELDS, Opcode

#: Data bytes per hex line.
DATA_BYTES_PER_LINE = 32

_BARE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/\-+#@$%^&*!?<>|~']*")


def fmt_name(name: str) -> str:
    """A name as an assembly token: bare when it is a simple word, else a JSON string."""
    if _BARE_RE.fullmatch(name):
        return name
    return json.dumps(name, ensure_ascii=False)


def fmt_float32(x: float) -> str:
    """The shortest decimal that reads back as the same float32 (numpy's float32 ``str``,
    checked), or ``f32:0x...`` bits (non-finite values); the assembler's ``parse_float32``
    reads either back bit for bit."""
    f = np.float32(x)
    if np.isfinite(f):
        s = str(f)
        if np.float32(float(s)).tobytes() == f.tobytes():
            return s
    return f"f32:0x{int(np.array([f]).view(np.uint32)[0]):08x}"


def _refs(names: Sequence[str]) -> list[str]:
    """How to refer to each entry: its name when unique (and free of commas, which separate
    references), else its index. Names that look like numbers are quoted by fmt_name."""
    count: dict[str, int] = {}
    for n in names:
        count[n] = count.get(n, 0) + 1
    out = []
    for i, n in enumerate(names):
        if count[n] == 1 and "," not in n:
            out.append(fmt_name(n))
        else:
            out.append(str(i))
    return out


def fmt_deps(bits: int) -> str:
    """Dependency bits as ``wait_prev,signal_next`` (``-`` for none)."""
    names = [n for n, d in DEP_NAMES.items() if bits & d]
    return ",".join(names) if names else "-"


def format_instructions(vfb: VfbFile) -> list[str]:
    """One assembly line per instruction of ``vfb.text`` (no index label)."""
    prog = vfb.program
    out: list[str] = [""] * len(prog)
    for op in Opcode:
        recs = prog.by_op[op]
        if not recs.size:
            continue
        mnemonic = op.name.lower()
        names = [f.name for f in PAYLOAD_FIELDS[op]]
        floats = FLOAT_FIELDS[op]
        cols = [[fmt_float32(v) for v in recs[n].tolist()] if n in floats else recs[n].tolist()
                for n in names]
        cores = recs["core"].tolist()
        layers = recs["layer"].tolist()
        deps = recs["deps"].tolist()
        flags = recs["flags"].tolist()
        ffs = FLAG_FIELDS[op]
        for k, i in enumerate(prog.index_of[op].tolist()):
            parts = [mnemonic, f"core={cores[k]}", f"layer={layers[k]}",
                     f"deps={fmt_deps(deps[k])}"]
            for ff in ffs:
                v = (flags[k] >> ff.shift) & ((1 << ff.width) - 1)
                parts.append(f"{ff.name}={ff.enum(v).name.lower() if ff.enum else v}")
            parts += [f"{n}={col[k]}" for n, col in zip(names, cols, strict=True)]
            out[i] = " ".join(parts)
    return out


def _ifps_in_blocks(vfb: VfbFile) -> bool:
    """True when ``.ifp`` ... ``.endifp`` blocks reproduce the IFP table: ranges in table
    order, not overlapping."""
    off = vfb.ifps["insn_offset"].astype(np.int64)
    end = off + vfb.ifps["insn_count"]
    return bool(np.all(end[:-1] <= off[1:])) if len(off) > 1 else True


def _fmt_ifp(vfb: VfbFile, i: int, layer_refs: list[str], explicit: bool) -> str:
    r = vfb.ifps[i]
    parts = [
        ".ifp",
        f"layer={layer_refs[int(r['layer'])]}",
        f"candidate={int(r['candidate'])}",
        f"core={int(r['core'])}",
        f"w={int(r['w0'])}:{int(r['w1'])}",
        f"h={int(r['h0'])}:{int(r['h1'])}",
        f"c={int(r['c0'])}:{int(r['c1'])}",
        f"latency={int(r['latency'])}",
        *(f"{b}={int(r[b])}" for b in IFP_BUFFERS),
    ]
    if explicit:
        parts.append(f"insns={int(r['insn_offset'])}:{int(r['insn_count'])}")
    return " ".join(parts)


def _fmt_tensor(t: Tensor) -> str:
    shape = "x".join(str(d) for d in t.shape) if t.shape else "-"
    return (f".tensor {fmt_name(t.name)} role={t.role} dtype={t.dtype} layout={t.layout} "
            f"shape={shape} offset={t.ddr_offset} size={t.size} scale={fmt_float32(t.scale)} "
            f"zp={t.zero_point}"
            + (f" onnx_shape={'x'.join(map(str, t.onnx_shape))}" if t.onnx_shape else ""))


def _fmt_hostop(h: HostOp, layer_refs: list[str], tensor_refs: list[str]) -> str:
    after = "-" if h.after_layer == BEFORE_FIRST_LAYER else layer_refs[h.after_layer]
    ins = ",".join(tensor_refs[t] for t in h.inputs) or "-"
    outs = ",".join(tensor_refs[t] for t in h.outputs) or "-"
    return (f".hostop {fmt_name(h.name)} op={fmt_name(h.op_type)} after={after} in={ins} "
            f"out={outs} attrs={canonical_json(h.attrs)}")


def _data_lines(data: bytes) -> list[str]:
    lines = [f".datasize {len(data)}"]
    arr = np.frombuffer(data, np.uint8)
    n = DATA_BYTES_PER_LINE
    contiguous = False
    for start in range(0, len(data), n):
        chunk = arr[start : start + n]
        if not chunk.any():
            contiguous = False
            continue
        if not contiguous:
            lines.append(f".data {start}")
            contiguous = True
        lines.append(chunk.tobytes().hex(" "))
    return lines


def _dispatch_lines(vfb: VfbFile, per_line: int = 16) -> list[str]:
    """``.dispatch`` lines: one per run of consecutive entries of one core (at most
    ``per_line`` entries a line), in table order."""
    d = vfb.dispatch
    if not d.size:
        return []
    out = [f"; dispatch table: {d.size} entries for {len(np.unique(d['core']))} core(s)"]
    names = ("ifp", "sync")
    run: list[str] = []
    core = int(d["core"][0])
    for c, k, a in zip(d["core"].tolist(), d["kind"].tolist(), d["arg"].tolist(), strict=True):
        if (c != core or len(run) == per_line) and run:
            out.append(f".dispatch core={core} " + " ".join(run))
            run = []
        core = c
        run.append("end" if k == 2 else f"{names[k]}:{a}")
    out.append(f".dispatch core={core} " + " ".join(run))
    out.append("")
    return out


def disassemble(vfb: VfbFile, *, full_data: bool = True, labels: bool = True) -> str:
    """``.s`` text of ``vfb``: ``.hw``, ``.program``, ``.layer``, ``.tensor``, ``.hostop``,
    the instructions (inside ``.ifp`` blocks when the IFP table allows, each with its index
    label when ``labels``), and the DATA blob (as hex lines when ``full_data``, else a
    one-line comment). With ``full_data``, assembling the text for the same hardware gives
    back ``to_bytes(vfb)`` exactly."""
    layer_refs = _refs([ly.name for ly in vfb.layers])
    tensor_refs = _refs([t.name for t in vfb.tensors])
    out = [
        f".hw {fmt_name(vfb.hw_name)}",
        f".program ddr_size={vfb.ddr_size} data_offset={vfb.data_offset} "
        f"cores={vfb.num_cores} isa={vfb.isa_version}",
        "",
    ]
    if vfb.layers:
        out.append(f"; {len(vfb.layers)} layer(s)")
        for ly in vfb.layers:
            out.append(f".layer {fmt_name(ly.name)} kind={ly.kind} macs={ly.macs} "
                       f"ifps={ly.first_ifp}:{ly.ifp_count}")
        out.append("")
    if vfb.tensors:
        out.append(f"; {len(vfb.tensors)} tensor(s) (DDR memory map)")
        out += [_fmt_tensor(t) for t in vfb.tensors]
        out.append("")
    if vfb.host_ops:
        out.append(f"; {len(vfb.host_ops)} host op(s)")
        out += [_fmt_hostop(h, layer_refs, tensor_refs) for h in vfb.host_ops]
        out.append("")

    insns = format_instructions(vfb)
    width = len(str(max(len(insns) - 1, 0)))
    if labels:
        insns = [f"{i:>{width}}: {s}" for i, s in enumerate(insns)]
    n_ifps = len(vfb.ifps)
    out.append(f"; text: {len(insns)} instructions, {n_ifps} IFPs")
    if _ifps_in_blocks(vfb):
        offs = vfb.ifps["insn_offset"].tolist()
        counts = vfb.ifps["insn_count"].tolist()
        nxt = 0
        open_end: int | None = None
        for pos in range(len(insns) + 1):
            if open_end is not None and open_end == pos:
                out.append(".endifp")
                open_end = None
            while nxt < n_ifps and offs[nxt] == pos and open_end is None:
                out.append(_fmt_ifp(vfb, nxt, layer_refs, explicit=False))
                if counts[nxt] == 0:
                    out.append(".endifp")
                else:
                    open_end = pos + counts[nxt]
                nxt += 1
            if pos < len(insns):
                out.append(("  " if open_end is not None else "") + insns[pos])
    else:
        out.append("; IFP instruction ranges overlap or are out of order: explicit insns=")
        out += [_fmt_ifp(vfb, i, layer_refs, explicit=True) for i in range(n_ifps)]
        out += insns
    out.append("")
    out += _dispatch_lines(vfb)
    if full_data:
        if vfb.data:
            out.append(f"; DATA: {len(vfb.data)} bytes, placed at DDR offset {vfb.data_offset}")
            out += _data_lines(vfb.data)
    elif vfb.data:
        out.append(f"; DATA: {len(vfb.data)} bytes at DDR offset {vfb.data_offset} not shown "
                   "(objdump -s prints them; without them this listing assembles to a binary "
                   "with no constants)")
    return "\n".join(out) + "\n"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> list[str]:
    """Aligned columns as comment lines: columns 1..``left`` left-aligned, the others
    right-aligned."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(header))]
    lines = []
    for r in cells:
        parts = [c.ljust(w) if j in range(1, 1 + left) else c.rjust(w)
                 for j, (c, w) in enumerate(zip(r, widths, strict=True))]
        lines.append(";   " + "  ".join(parts).rstrip())
    return lines


def objdump(
    data: bytes, source: str, *, full_contents: bool = False, hw: HardwareConfig | None = None
) -> str:
    """The ``vfpga objdump`` listing of the binary ``data`` (file name ``source``): header,
    section table, layer / IFP / tensor tables and host ops as ``;`` comments, then
    :func:`disassemble` (DATA bytes only with ``full_contents``). ``hw`` checks the
    hardware fingerprint. Raises :class:`~vfpga.errors.BinaryFormatError` for a bad file."""
    vfb = from_bytes(data, source, hw)
    hdr = read_header(data, source)
    out = [
        f"; vfpga objdump of {source}",
        f"; header: magic VFPGABIN, format version {hdr.version}, flags {hdr.flags:#x}, "
        f"{hdr.file_size} bytes, {len(hdr.sections)} sections",
        f"; hardware: {vfb.hw_name}, fingerprint {vfb.hw_fingerprint.hex()}",
        f"; checksum: SHA-256 {bytes(data[hdr.file_size - 32 : hdr.file_size]).hex()} "
        f"(trailer at byte {hdr.file_size - 32})",
        f"; program: ddr_size {vfb.ddr_size} bytes, DATA at DDR offset {vfb.data_offset}, "
        f"{len(vfb.layers)} layers, {vfb.num_cores} logical core(s), ISA version "
        f"{vfb.isa_version}, {vfb.num_insns} instructions, {len(vfb.ifps)} IFPs",
        ";",
        "; sections:",
    ]
    rows = []
    for s in hdr.ordered_sections():
        dt = SECTION_DTYPES.get(s.kind)
        recs = s.size // dt.itemsize if dt is not None else (
            s.size // 64 if s.kind.name == "TEXT" else "")
        rows.append((s.index, s.kind.name, s.offset, s.size, recs))
    out += _table(("#", "kind", "offset", "size", "records"), rows)
    if vfb.layers:
        out += [";", "; layers:"]
        out += _table(("#", "name", "kind", "MACs", "first IFP", "IFPs"),
                      [(i, ly.name, ly.kind, ly.macs, ly.first_ifp, ly.ifp_count)
                       for i, ly in enumerate(vfb.layers)], left=2)
    if len(vfb.ifps):
        names = [ly.name for ly in vfb.layers]
        rows = []
        for i, r in enumerate(vfb.ifps.tolist()):
            d = dict(zip(vfb.ifps.dtype.names or (), r, strict=True))
            rows.append((i, names[d["layer"]], d["candidate"], d["core"],
                         f"{d['w0']}:{d['w1']}", f"{d['h0']}:{d['h1']}", f"{d['c0']}:{d['c1']}",
                         f"{d['insn_offset']}+{d['insn_count']}", d["latency"],
                         *(d[b] for b in IFP_BUFFERS)))
        out += [";", "; IFP table (tile bounds [from:to), predicted latency in cycles, "
                "on-chip bytes used per buffer):"]
        out += _table(("#", "layer", "cand", "core", "w", "h", "c", "insns", "latency",
                       *IFP_BUFFERS), rows, left=1)
    if vfb.tensors:
        out += [";", "; tensors (DDR memory map, tenant-relative byte offsets):"]
        out += _table(("#", "name", "role", "dtype", "layout", "shape", "offset", "size",
                       "scale", "zp"),
                      [(i, t.name, t.role, t.dtype, t.layout,
                        "x".join(map(str, t.shape)) or "-", t.ddr_offset, t.size,
                        fmt_float32(t.scale), t.zero_point)
                       for i, t in enumerate(vfb.tensors)], left=5)
    if vfb.host_ops:
        out += [";", "; host ops (run on the CPU after the named layer's barrier):"]
        tn = [t.name for t in vfb.tensors]
        out += _table(("#", "name", "op", "after", "inputs", "outputs"),
                      [(i, h.name, h.op_type,
                        "-" if h.after_layer == BEFORE_FIRST_LAYER
                        else vfb.layers[h.after_layer].name,
                        ",".join(tn[t] for t in h.inputs), ",".join(tn[t] for t in h.outputs))
                       for i, h in enumerate(vfb.host_ops)], left=5)
    out += [";", ""]
    return "\n".join(out) + disassemble(vfb, full_data=full_contents)
