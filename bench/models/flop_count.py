"""FLOPs of whatever a function runs, with torch's count of a grouped convolution's backward corrected.

Usage:
    from bench.models.flop_count import flops
    total = flops(lambda: step(real))            # FLOPs of one call (a multiply-add is 2 FLOPs)

torch.utils.flop_counter.FlopCounterMode counts convolutions, linear layers and their backward passes (elementwise
ops not); its formula for a convolution's backward is replaced by one that respects groups (torch's counts grouped
weight gradients `groups` times over). The double backward of a grouped convolution runs (and is counted) as one
convolution per group, which is how aten computes it.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count


class _GlobalOnly:
    """Stands in for FlopCounterMode's module tracker, whose backward hooks break torch.autograd.grad (R1/R2)."""

    parents = frozenset({"Global"})

    def __enter__(self) -> None:
        pass

    def __exit__(self, *args: object) -> None:
        pass


def conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                        _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:  # fmt: skip
    """Each gradient of a convolution (input, weight) costs what its forward costs.

    torch's own formula counts a grouped convolution's weight gradient as if it had one group (torch 2.14:
    `groups` times too many; 16x for r3gan-tiny's 3x3 convolutions, 96x for the paper's)."""
    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def flops(fn) -> int:
    counter = FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: conv_backward_flops})
    counter.mod_tracker = _GlobalOnly()  # totals only; per-module tables are not needed here
    with counter:
        fn()
    return counter.get_total_flops()
