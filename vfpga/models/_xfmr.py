"""Transformer-era layers for the builder models, written the way PyTorch exports them
(opset 17): ``LayerNormalization`` over the last axis, ``nn.Linear`` on a token tensor as
``MatMul`` + ``Add``, GELU in its Erf form ``x * 0.5 * (1 + erf(x / sqrt 2))`` (five nodes,
as ``torch.onnx`` writes ``nn.GELU()`` below opset 20).

Initialisation (seeded, non-trivial, so that normalization and folding are exercised):
LayerNorm gamma ~ U(0.8, 1.2), beta ~ N(0, 0.05²); linear weights N(0, g / fan_in) with
``g = 2`` before a GELU and 1 elsewhere, biases N(0, 0.02²).
"""

from __future__ import annotations

import math

import numpy as np

from vfpga.models._builder import GraphBuilder

#: Default-domain opset of the transformer-style models (LayerNormalization is opset 17).
XFMR_OPSET = 17


class XfmrBuilder(GraphBuilder):
    """:class:`GraphBuilder` with LayerNorm, token-wise linear layers and GELU."""

    def layer_norm(self, x: str, name: str, channels: int, eps: float = 1e-6) -> str:
        """``LayerNormalization`` over the last axis with seeded gamma and beta."""
        gamma = self.rng.uniform(0.8, 1.2, channels).astype(np.float32)
        beta = self.rng.normal(0.0, 0.05, channels).astype(np.float32)
        g = self.const(f"{name}.weight", gamma)
        b = self.const(f"{name}.bias", beta)
        return self.node("LayerNormalization", [x, g, b], name, axis=-1, epsilon=eps)

    def layer_norm_2d(self, x: str, name: str, channels: int, eps: float = 1e-6) -> str:
        """ConvNeXt's channels-first LayerNorm of an NCHW map: ``Transpose`` to NHWC,
        ``LayerNormalization`` over channels, ``Transpose`` back."""
        t = self.node("Transpose", [x], f"{name}.to_nhwc", perm=[0, 2, 3, 1])
        y = self.layer_norm(t, name, channels, eps)
        return self.node("Transpose", [y], f"{name}.to_nchw", perm=[0, 3, 1, 2])

    def linear(self, x: str, name: str, fin: int, fout: int, gain: float = 1.0) -> str:
        """``nn.Linear`` over the last axis: ``MatMul(x, W[fin, fout])`` then ``Add`` of
        the bias (PyTorch's export for an input of rank > 2)."""
        w = self.rng.standard_normal((fin, fout), dtype=np.float32) * np.float32(
            math.sqrt(gain / fin)
        )
        b = self.rng.normal(0.0, 0.02, fout).astype(np.float32)
        y = self.node("MatMul", [x, self.const(f"{name}.weight", w)], f"{name}.matmul")
        return self.node("Add", [y, self.const(f"{name}.bias", b)], name)

    def gelu(self, x: str, name: str) -> str:
        """GELU in the Erf form PyTorch exports below opset 20."""
        if "gelu.sqrt2" not in self._names:
            self.const("gelu.sqrt2", np.array(math.sqrt(2.0), np.float32))
            self.const("gelu.one", np.array(1.0, np.float32))
            self.const("gelu.half", np.array(0.5, np.float32))
        d = self.node("Div", [x, "gelu.sqrt2"], f"{name}.div")
        e = self.node("Erf", [d], f"{name}.erf")
        a = self.node("Add", [e, "gelu.one"], f"{name}.add")
        m = self.node("Mul", [x, a], f"{name}.mul")
        return self.node("Mul", [m, "gelu.half"], name)
