"""Random quantized graphs for compiler tests (built directly as QGraph, no ONNX)."""

from __future__ import annotations

import numpy as np

from vfpga.frontend.qgraph import Act, QAdd, QConcat, QConv, QGraph, QPool, QTensor


class GraphBuilder:
    """Builds a QGraph layer by layer with seeded random weights and requantization
    parameters chosen so activations stay spread over the int8 range."""

    def __init__(self, shape: tuple[int, int, int], seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.tensors: dict[str, QTensor] = {}
        self.nodes: list = []
        c, h, w = shape
        self.input = self._tensor("input", (1, c, h, w))

    def _tensor(self, name: str, shape: tuple[int, ...]) -> str:
        scale = float(np.float32(self.rng.uniform(0.01, 0.1)))  # scales are float32 values
        zp = int(self.rng.integers(-20, 20))
        self.tensors[name] = QTensor(name, shape, scale, zp)
        return name

    def shape(self, t: str) -> tuple[int, int, int, int]:
        return self.tensors[t].shape  # type: ignore[return-value]

    def conv(self, x: str, oc: int, k: tuple[int, int] = (3, 3), s: int = 1,
             pads: tuple[int, int, int, int] | None = None, groups: int = 1,
             act: str = "relu", dil: tuple[int, int] = (1, 1),
             ups: tuple[int, int] = (1, 1)) -> str:
        _, c, h, w = self.shape(x)
        kh, kw = k
        ekh, ekw = (kh - 1) * dil[0] + 1, (kw - 1) * dil[1] + 1
        h, w = (h - 1) * ups[0] + 1, (w - 1) * ups[1] + 1
        if pads is None:
            pads = (ekh // 2, ekw // 2, ekh // 2, ekw // 2)
        oh = (h + pads[0] + pads[2] - ekh) // s + 1
        ow = (w + pads[1] + pads[3] - ekw) // s + 1
        name = f"conv{len(self.nodes)}"
        y = self._tensor(name + ".out", (1, oc, oh, ow))
        cig = c // groups
        wq = self.rng.integers(-127, 128, (oc, cig, kh, kw), dtype=np.int8)
        bias = self.rng.integers(-3000, 3000, oc).astype(np.int32)
        std = np.sqrt(cig * kh * kw) * 60 * 70
        mult = self.rng.integers(1 << 29, 1 << 30, oc).astype(np.int32)
        shift = np.full(oc, int(np.round(np.log2(std * (1 << 29) / 40))), np.int32)
        yt = self.tensors[y]
        a = Act()
        if act == "relu":
            a = Act("relu", yt.zero_point, 127)
        elif act == "relu6":
            a = Act("relu6", yt.zero_point, min(127, yt.zero_point + 60))
        self.nodes.append(QConv(name, x, y, wq, bias, mult, shift, (s, s), pads, groups, a,
                                dilations=dil, upsample=ups))
        return y

    def pool(self, x: str, kind: str, k: int = 2, s: int = 2, p: int = 0,
             include_pad: bool = False) -> str:
        _, c, h, w = self.shape(x)
        if kind == "global_avg":
            oh = ow = 1
        else:
            oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        name = f"pool{len(self.nodes)}"
        y = self._tensor(name + ".out", (1, c, oh, ow))
        if kind == "max":
            self.tensors[y].scale = self.tensors[x].scale
            self.tensors[y].zero_point = self.tensors[x].zero_point
        kernel = (h, w) if kind == "global_avg" else (k, k)
        # average pools requantize with the tensors' scales (no parameters of their own)
        self.nodes.append(QPool(name, x, y, kind, kernel, (s, s), (p, p, p, p), include_pad))
        return y

    def add(self, a: str, b: str, act: str = "relu") -> str:
        name = f"add{len(self.nodes)}"
        y = self._tensor(name + ".out", self.shape(a))
        sa, sb, sy = (self.tensors[t].scale for t in (a, b, y))
        yt = self.tensors[y]
        self.nodes.append(QAdd(name, a, b, y, int(sa / sy * (1 << 20)), int(sb / sy * (1 << 20)),
                               20, Act("relu", yt.zero_point, 127) if act == "relu" else Act()))
        return y

    def concat(self, xs: list[str]) -> str:
        name = f"concat{len(self.nodes)}"
        _, _, h, w = self.shape(xs[0])
        c = sum(self.shape(t)[1] for t in xs)
        y = self._tensor(name + ".out", (1, c, h, w))
        self.nodes.append(QConcat(name, xs, y))
        self._share_quant(y)
        return y

    def _share_quant(self, y: str) -> None:
        """QConcat precondition: every input (and, through nested concats, their inputs)
        has the output's quantization."""
        for n in self.nodes:
            if isinstance(n, QConcat) and n.output == y:
                for t in n.inputs:
                    self.tensors[t].scale = self.tensors[y].scale
                    self.tensors[t].zero_point = self.tensors[y].zero_point
                    self._share_quant(t)

    def build(self, outputs: list[str], name: str = "synthetic") -> QGraph:
        return QGraph(name, [self.input], outputs, self.tensors, self.nodes)


def small_net(seed: int = 0, size: int = 20) -> QGraph:
    """A small network with every accelerator layer kind: conv (dense, strided, grouped,
    depthwise, asymmetric 1x7/7x1), max/avg/global pooling, residual add, a concat of
    three branches (one of them nested), and a classifier."""
    b = GraphBuilder((3, size, size), seed)
    x = b.conv(b.input, 16, (3, 3), 1)
    x = b.pool(x, "max", 3, 2, 1)
    y = b.conv(x, 16, (1, 1), act="none")
    y = b.conv(y, 16, (3, 3), groups=16, act="relu6")
    x = b.add(x, y)
    p = b.conv(x, 8, (1, 7), pads=(0, 3, 0, 3))
    q = b.conv(x, 8, (7, 1), pads=(3, 0, 3, 0))
    r = b.pool(x, "avg", 3, 1, 1, include_pad=False)
    r = b.conv(r, 8, (1, 1), groups=1)
    cat = b.concat([b.concat([p, q]), r])
    z = b.conv(cat, 24, (3, 3), s=2, groups=4)
    z = b.pool(z, "avg", 2, 2, 0, include_pad=True)
    z = b.pool(z, "global_avg")
    z = b.conv(z, 10, (1, 1), act="none")
    return b.build([z])
