"""DDR memory planning of a quantized graph (the ``dnn-plan-memory`` pass's engine).

Every activation tensor is stored int8 NHWC. A tensor is a *view* of a storage block: its
element ``(h, w, c)`` lives at ``offset + (h * W + w) * c_stride + c``. Concatenation is
free: the inputs of a concat are views of the concat's storage at their channel offsets,
so producers write straight into it (nested concats nest their views). A channel shuffle
is free too: its input is a view of its output's storage whose channels are stored at
their shuffled positions (:attr:`Placement.shuffle`), so the producer's SAVEs scatter
the channels as they write. A channel range (:class:`QSlice`, ONNX Split/Slice) is free
as well: its output is a view of its input's storage at the range's channel offset, with
the input's channel stride, and its consumers' LOADs read it in place. Where a tensor
cannot be a view (it is a graph input or output, a host op's input or output, it feeds
two concats that do not nest, or it is a channel range that a concat or a host op reads),
the planner inserts an exact copy layer (a depthwise 1x1 identity convolution) and says
so in :attr:`MemoryPlan.notes`.

Storage blocks are allocated first-fit with liveness-based reuse: a block lives from the
first step that writes it to the last step that reads it (inclusive), and two blocks
whose lifetimes overlap never share bytes. Constants (weights and per-channel parameter
records, with ``-in_zp * sum(w)`` folded into the bias) follow the activations in one
DATA blob.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from vfpga.frontend.qgraph import (
    Act,
    QAdd,
    QConcat,
    QConv,
    QGraph,
    QHostOp,
    QNode,
    QPool,
    QResize,
    QShuffle,
    QSlice,
    QTensor,
    float_tensors,
    node_inputs,
)
from vfpga.isa.float32 import requant_scales
from vfpga.isa.spec import ACT_TABLE_BYTES, PARAM_RECORD_BYTES

ALIGN = 64


def _align(n: int, a: int = ALIGN) -> int:
    return -(-n // a) * a


@dataclass
class Placement:
    """Where a tensor lives in tenant DDR (see module docstring)."""

    offset: int
    c_stride: int
    storage: int
    #: channel shuffle groups ``g`` when the tensor is stored shuffled (the input of a
    #: :class:`QShuffle`, a view of the shuffle's output): channel ``c`` lives at
    #: ``(c % m) * g + c // m`` (``m = C / g``) relative to ``offset``; 0 otherwise
    shuffle: int = 0
    #: the tensor's channel count ``C`` when ``shuffle`` is set
    shuffle_c: int = 0

    def channel_pos(self, c: int) -> int:
        """Where channel ``c`` lives relative to ``offset`` (within a pixel)."""
        if not self.shuffle:
            return c
        m = self.shuffle_c // self.shuffle
        return (c % m) * self.shuffle + c // m


@dataclass
class Storage:
    """A block of DDR holding one or more tensors (several for a concatenation)."""

    root: str
    size: int
    first: int
    last: int
    offset: int = -1


@dataclass
class ConstBlob:
    """DDR offsets of a convolution's constants within the DATA blob."""

    weights: int
    params: int


@dataclass
class MemoryPlan:
    """The result of planning: nodes (copies inserted, concats kept for bookkeeping),
    tensor placements, storage blocks, the DATA blob and the tenant DDR size."""

    graph: QGraph
    places: dict[str, Placement]
    storages: list[Storage]
    consts: dict[str, ConstBlob]
    data: bytes
    data_offset: int
    ddr_size: int
    notes: list[str] = field(default_factory=list)

    @property
    def activation_bytes(self) -> int:
        return self.data_offset


def nchw(t: QTensor) -> tuple[int, int, int, int]:
    """(N, C, H, W) of a tensor (2-D tensors are read as N x C x 1 x 1)."""
    s = tuple(t.shape) + (1,) * (4 - len(t.shape))
    return int(s[0]), int(s[1]), int(s[2]), int(s[3])


def identity_copy(name: str, src: QTensor, dst_name: str) -> QConv:
    """An exact copy layer: depthwise 1x1 conv, weight 1, bias -zp, requant by 1."""
    c = nchw(src)[1]
    return QConv(
        name=name,
        input=src.name,
        output=dst_name,
        weight=np.ones((c, 1, 1, 1), dtype=np.int8),
        bias=np.zeros(c, dtype=np.int32),
        multiplier=np.full(c, 1 << 30, dtype=np.int32),
        shift=np.full(c, 30, dtype=np.int32),
        groups=c,
        act=Act(),
    )


def _copy_of(g: QGraph, nodes: list[QNode], t: str, cname: str) -> str:
    """Append an identity copy ``cname`` of tensor ``t`` to ``nodes``; the copy's name."""
    tname = f"{t}@{cname}"
    src = g.tensors[t]
    g.tensors[tname] = QTensor(tname, src.shape, src.scale, src.zero_point)
    nodes.append(identity_copy(cname, src, tname))
    return tname


def _insert_copies(g: QGraph, notes: list[str]) -> QGraph:
    """Insert copy layers where a tensor cannot be a view of a concat's storage, cannot
    be written shuffled straight into a channel shuffle's storage, or is a channel range
    (a slice view) that a concat or a host op reads."""
    g = copy.copy(g)
    g.tensors = dict(g.tensors)
    nodes: list[QNode] = []
    pinned = set(g.inputs) | set(g.outputs)
    for n in g.nodes:
        if isinstance(n, QHostOp):
            pinned.update(n.inputs)
            pinned.add(n.output)
    reads: dict[str, int] = {}
    for n in g.nodes:
        for t in node_inputs(n):
            reads[t] = reads.get(t, 0) + 1
    concat_related = {t for n in g.nodes if isinstance(n, QConcat) for t in (*n.inputs, n.output)}
    sliced = {n.output for n in g.nodes if isinstance(n, QSlice)}
    if bad := sliced & set(g.outputs):
        raise ValueError(f"graph output(s) {sorted(bad)} are channel-range views (QSlice); "
                         "the lowering copies such outputs")
    layer_outputs = {n.output for n in g.nodes if isinstance(n, QConv | QPool | QAdd | QResize)}
    in_concat: dict[str, str] = {}
    # a tensor may be a view of only one concat (or of nested ones, handled by chaining)
    for n in g.nodes:
        if isinstance(n, QHostOp) and any(t in sliced for t in n.inputs):
            ins: list[str] = []
            for i, t in enumerate(n.inputs):
                if t in sliced:
                    t = _copy_of(g, nodes, t, f"{n.name}.copy{i}")
                    notes.append(f"copy inserted for '{n.inputs[i]}' into host op "
                                 f"'{n.name}': a channel range of another tensor (a view)")
                ins.append(t)
            n = copy.copy(n)
            n.inputs = ins
        if isinstance(n, QShuffle):
            t = n.input
            why = ("a graph input/output or host-op operand" if t in pinned
                   else "read by other nodes too" if reads.get(t, 0) > 1
                   else "part of a concatenation" if t in concat_related
                   else "not produced by an accelerator layer" if t not in layer_outputs
                   else "")
            if why:
                cname = f"{n.name}.copy"
                tname = f"{t}@{cname}"
                src = g.tensors[t]
                g.tensors[tname] = QTensor(tname, src.shape, src.scale, src.zero_point)
                nodes.append(identity_copy(cname, src, tname))
                notes.append(f"copy inserted for '{t}' into channel shuffle '{n.name}': {why}")
                n = copy.copy(n)
                n.input = tname
        if isinstance(n, QConcat):
            new_inputs: list[str] = []
            for t in n.inputs:
                if t in pinned or t in in_concat or t in new_inputs or t in sliced:
                    tname = _copy_of(g, nodes, t, f"{n.name}.copy{len(new_inputs)}")
                    why = ("a graph input/output or host-op operand" if t in pinned
                           else "a channel range of another tensor (a view)" if t in sliced
                           else "already part of another concatenation")
                    notes.append(f"copy inserted for '{t}' into concat '{n.name}': {why}")
                    t = tname
                in_concat[t] = n.name
                new_inputs.append(t)
            n = copy.copy(n)
            n.inputs = new_inputs
        nodes.append(n)
    g.nodes = nodes
    return g


def _fold_bias(n: QConv, in_zp: int) -> np.ndarray:
    # sum with an int64 accumulator, without an int64 copy of the weights (10^8 of them in
    # a VGG-16 FC layer)
    w = n.weight.reshape(n.weight.shape[0], -1)
    return n.bias.astype(np.int64) - in_zp * w.sum(axis=1, dtype=np.int64)


#: One pbuf parameter record (ISA v2): bias int32, scale float32, divisor float32.
PARAM_RECORD = np.dtype([("bias", "<i4"), ("scale", "<f4"), ("divisor", "<f4")])


def conv_constants(n: QConv, in_zp: int) -> tuple[bytes, bytes]:
    """Weights as int8 ``[OC][KH][KW][IC/groups]`` and parameter records ``(bias - in_zp *
    sum(w), scale, divisor)`` (little-endian int32, float32, float32; ISA v2), where
    ``scale[c] = requant_scale(multiplier[c], shift[c])`` and ``divisor`` is the node's;
    with a ``table`` activation its :data:`~vfpga.isa.spec.ACT_TABLE_BYTES` entries follow
    the records (docs/isa.md). A float32-summing conv (``fsum_in_scale``) keeps its bias
    unfolded: its records are ``(bias, weight scale, output scale)``."""
    w = np.ascontiguousarray(n.weight.transpose(0, 2, 3, 1), dtype=np.int8)
    # a float32-summing conv (ISA v5 fsum) dequantizes its int32 bias itself: no folding
    bias = n.bias.astype(np.int64) if n.fsum_in_scale is not None else _fold_bias(n, in_zp)
    if np.abs(bias).max(initial=0) >= 2**31:
        raise OverflowError(f"conv '{n.name}': folded bias does not fit int32")
    rec = np.zeros(len(bias), PARAM_RECORD)
    rec["bias"] = bias
    rec["scale"] = requant_scales(n.multiplier, n.shift)
    rec["divisor"] = np.float32(n.divisor)
    table = b""
    if n.act.kind == "table":  # act=table: the 256 int8 entries follow the records
        table = np.asarray(n.act.table, dtype=np.int8).tobytes()
        assert len(table) == ACT_TABLE_BYTES, n.name
    return w.tobytes(), rec.tobytes() + table


def chunk_weight_offset(a: int, n: int, c: int, oc: int, taps: int) -> int:
    """Where, from a layer's first weight byte, output channel ``c``'s weights of the
    stored chunk of input channels ``[a, a + n)`` start when the layer's weights are
    stored chunk by chunk (:func:`chunked_weights`): the chunks before it hold ``a``
    input channels of all ``oc`` output channels and ``taps`` kernel taps."""
    return a * oc * taps + c * taps * n


def chunked_weights(w: np.ndarray, cs: int) -> np.ndarray:
    """Int8 weights ``w`` of shape ``[OC][KH][KW][IC]`` stored chunk by chunk: for each
    chunk of ``cs`` input channels (the last may be shorter), in order,
    ``[OC][KH][KW][its channels]`` (docs/binary-format.md, DATA). Flat, same bytes."""
    ic = w.shape[-1]
    x = w.reshape(-1, ic)  # rows (output channel, tap) of ic bytes
    rows, nq = x.shape[0], ic // cs
    out = np.empty(w.size, np.int8)
    full = nq * cs * rows
    # the whole chunks: a transpose of [rows][nq] cells of cs bytes, 1024 rows at a time
    # (the source block stays in cache: VGG-16's fc6, 20 M cells of 5 bytes, in 0.1 s)
    cells = x[:, : nq * cs].view(f"V{cs}")
    dst = out[:full].view(f"V{cs}").reshape(nq, rows)
    for r0 in range(0, rows, 1024):
        dst[:, r0 : r0 + 1024] = cells[r0 : r0 + 1024].T
    if ic % cs:  # the last, shorter chunk
        out[full:].reshape(rows, ic - nq * cs)[...] = x[:, nq * cs :]
    return out


def plan_memory(g: QGraph) -> MemoryPlan:
    """Plan DDR for ``g``: views for concatenations, liveness-based reuse, DATA blob."""
    notes: list[str] = []
    g = _insert_copies(g, notes)
    # 1. concat views: parent[t] = (concat output, channel offset)
    parent: dict[str, tuple[str, int]] = {}
    shuffled: dict[str, int] = {}
    for n in reversed(g.nodes):
        if isinstance(n, QConcat):
            off = 0
            for t in n.inputs:
                parent[t] = (n.output, off)
                off += nchw(g.tensors[t])[1]
        elif isinstance(n, QShuffle):  # the producer writes straight into the output
            parent[n.input] = (n.output, 0)
            shuffled[n.input] = n.groups
        elif isinstance(n, QSlice):  # the output is a channel range of the input
            parent[n.output] = (n.input, n.start)

    def root_of(t: str) -> tuple[str, int]:
        off = 0
        while t in parent:
            t, o = parent[t]
            off += o
        return t, off

    # 2. lifetimes of roots: step index of first write and last read
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for t in g.inputs:
        first[root_of(t)[0]] = -1
    for step, n in enumerate(g.nodes):
        if isinstance(n, QConcat | QShuffle | QSlice):
            continue
        for t in node_inputs(n):
            r = root_of(t)[0]
            last[r] = max(last.get(r, -1), step)
        r = root_of(n.output)[0]
        first[r] = min(first.get(r, step), step)
    for n in g.nodes:
        if isinstance(n, QConcat | QShuffle | QSlice):  # reads nothing; its output must live
            r = root_of(n.output)[0]
            last.setdefault(r, first.get(r, 0))
    end = len(g.nodes)
    for t in g.outputs:
        last[root_of(t)[0]] = end
    storages: list[Storage] = []
    sid: dict[str, int] = {}
    floats = float_tensors(g)
    for r in sorted(first, key=lambda r: (first[r], r)):
        _, c, h, w = nchw(g.tensors[r])
        dt_bytes = 8 if r in g.index_inputs else 4 if r in floats else 1  # int64 ids
        sid[r] = len(storages)
        storages.append(Storage(r, _align(c * h * w * dt_bytes), first[r], last.get(r, first[r])))
    # 3. first-fit allocation with liveness reuse
    live: list[Storage] = []
    top = 0
    for s in sorted(storages, key=lambda s: (s.first, -s.size)):
        live = [x for x in live if x.last >= s.first]
        cursor = 0
        for x in sorted(live, key=lambda x: x.offset):
            if x.offset - cursor >= s.size:
                break
            cursor = max(cursor, x.offset + x.size)
        s.offset = cursor
        top = max(top, cursor + s.size)
        live.append(s)
    places: dict[str, Placement] = {}
    for t in g.tensors:
        r, off = root_of(t)
        if r not in sid:
            continue
        s = storages[sid[r]]
        places[t] = Placement(s.offset + off, nchw(g.tensors[r])[1], sid[r])
        if t in shuffled:
            places[t].shuffle = shuffled[t]
            places[t].shuffle_c = nchw(g.tensors[t])[1]
    # 4. constants
    data_offset = _align(top)
    blob = bytearray()
    consts: dict[str, ConstBlob] = {}
    for n in g.nodes:
        if isinstance(n, QConv):
            wbytes, pbytes = conv_constants(n, g.tensors[n.input].zero_point)
            w_at = data_offset + len(blob)
            blob += wbytes
            blob += bytes(_align(len(blob)) - len(blob))
            p_at = data_offset + len(blob)
            blob += pbytes
            blob += bytes(_align(len(blob)) - len(blob))
            consts[n.name] = ConstBlob(w_at, p_at)
    assert PARAM_RECORD_BYTES == 12
    return MemoryPlan(
        graph=g,
        places=places,
        storages=storages,
        consts=consts,
        data=bytes(blob),
        data_offset=data_offset,
        ddr_size=data_offset + len(blob),
        notes=notes,
    )


__all__ = ["MemoryPlan", "Placement", "QPool", "Storage", "chunk_weight_offset",
           "chunked_weights", "nchw", "plan_memory"]
