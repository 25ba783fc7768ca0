"""Which fast-path plan runs an epoch: the fused epoch plan or the cores' own plans.

Both compute the same bytes, counters and faults (:mod:`vfpga.emulator.epoch`,
:mod:`vfpga.emulator.plan`); only their speed differs, and it differs by the layer's form.
The choice is made once, when the epoch's plans are built, from what the epoch *is* (its
products' shapes), never from timing, so a binary's runs take the same path every time.

What an epoch plan buys is fewer, larger integer products: every product call packs its
``[K][N]`` weights and has a fixed cost, and the epoch plan makes one call (two for a
partial-sum chain) per group of tiles sharing weights, where the cores' plans make one per
CONV instruction. What it costs is a second pass over the outputs (its results are copied
into the buffers afterwards, as the interpreter leaves them) and products whose
``[M][N]`` int32 results no longer fit the caches. On several cores the saving always
wins (every core repeats the same input tiles and weights). On one core it wins only when
the calls it saves carry enough weights per output (measured on MobileNet v1,
MobileNetV3-Large, ResNet-50 and yolo_nano, docs/runtime.md):

* depthwise CONVs: the cores' plans (one compiled depthwise call per tile either way; the
  epoch plan adds the copies of tiles side by side);
* products of one row, the fully connected layers: the cores' plans (their stacked chain
  weights make one call already);
* a partial-sum chain (a reduction split over several CONVs): the epoch plan (it saves
  one call per link and tile);
* otherwise the epoch plan when the weights the cores' plans would pack again, ``(T - 1)
  x K x N`` for a group of ``T`` input tiles, are at least :data:`WEIGHT_PER_OUTPUT`
  times the outputs ``M x N``, summed over the epoch's groups.
"""

from __future__ import annotations

from vfpga.emulator.epoch import EpochPlan

__all__ = ["WEIGHT_PER_OUTPUT", "epoch_pays"]

#: On one core, the epoch plan runs an epoch whose saved calls pack at least this many
#: weight bytes per output element (see the module docstring).
WEIGHT_PER_OUTPUT = 0.5


def epoch_pays(ep: EpochPlan, n_cores: int) -> bool:
    """Whether the epoch plan ``ep`` of an epoch on ``n_cores`` cores runs it (else the
    cores run their own plans); a function of the plan's structure only."""
    if n_cores > 1 or not ep.groups:  # several cores, or an element-wise epoch plan
        return True
    weights = outputs = 0
    for g in ep.groups:
        if g.depthwise or g.m <= 1:
            return False
        if len(g.ks) > 1:
            return True
        outputs += g.m * g.n
        weights += (len(g.tiles) - 1) * sum(g.ks) * g.n
    return weights >= WEIGHT_PER_OUTPUT * outputs
