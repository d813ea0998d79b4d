"""The convolutions of a network, each timed alone in every CPU kernel PyTorch has: what bench.speed.conv_ceiling
prints and bench.speed.inception_throughput compares the Inception against.

Usage:
    from bench.speed.conv_shapes import Ceiling, conv_shapes, fid_inception_shapes, print_table, search
    shapes = fid_inception_shapes()              # [(ConvShape, how many layers use it), ...] in forward order
    best = search(shapes, batches=[16, 50])      # the fastest kernel and batch of each shape
    print_table(shapes, best, [16, 50])          # one line per shape; returns the ceiling's seconds per image
    Ceiling(shapes, best).round_seconds()        # every shape once more at its best: the ceiling's time now

Kernels:
  nchw           F.conv2d on contiguous tensors (what pytorch-fid runs)
  channels_last  F.conv2d on channels_last input and weight
  onednn         torch.ops.mkldnn._convolution_pointwise on weights reordered once into oneDNN's blocked layout
  mkldnn         aten.mkldnn_convolution on opaque oneDNN tensors (input and weight in oneDNN's layouts)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

KERNELS = ("nchw", "channels_last", "onednn", "mkldnn")


@dataclass(frozen=True)
class ConvShape:
    in_channels: int
    height: int
    width: int
    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]

    @property
    def out_size(self) -> tuple[int, int]:
        return tuple((n + 2 * p - k) // s + 1 for n, p, k, s in zip((self.height, self.width), self.padding,
                                                                    self.kernel, self.stride, strict=True))  # fmt: skip

    @property
    def flops(self) -> int:
        """Multiply-adds x 2 per image, as torch.utils.flop_counter counts them."""
        ho, wo = self.out_size
        return 2 * self.out_channels * ho * wo * self.in_channels * self.kernel[0] * self.kernel[1]

    def __str__(self) -> str:
        k, s = f"{self.kernel[0]}x{self.kernel[1]}", f"/{self.stride[0]}" if self.stride[0] > 1 else ""
        return f"{self.in_channels:>4}x{self.height}x{self.width} {k}{s} -> {self.out_channels}"


def conv_shapes(net: nn.Module, size: int = 299) -> list[tuple[ConvShape, int]]:
    """(shape, how many layers use it) for each distinct convolution of `net` on one size x size image, in the order
    the forward pass first meets them."""
    seen: dict[ConvShape, int] = {}

    def hook(m: nn.Conv2d, args: tuple[torch.Tensor, ...]) -> None:
        _, c, h, w = args[0].shape
        shape = ConvShape(c, h, w, m.out_channels, tuple(m.kernel_size), tuple(m.stride), tuple(m.padding))
        seen[shape] = seen.get(shape, 0) + 1

    hooks = [m.register_forward_pre_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.inference_mode():
            net.eval()(torch.zeros(1, 3, size, size))
    finally:
        for h in hooks:
            h.remove()
    return list(seen.items())


def runner(shape: ConvShape, kernel: str, batch: int) -> Callable[[], object]:
    """A closure that runs the convolution once, its inputs prepared (and weights reordered) outside it."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, shape.in_channels, shape.height, shape.width, generator=g)
    w = torch.randn(shape.out_channels, shape.in_channels, *shape.kernel, generator=g) * 0.05
    b = torch.randn(shape.out_channels, generator=g)
    pad, stride, dil = list(shape.padding), list(shape.stride), [1, 1]
    if kernel == "nchw":
        return lambda: F.conv2d(x, w, b, stride, pad)
    if kernel == "channels_last":
        xc, wc = x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last)
        return lambda: F.conv2d(xc, wc, b, stride, pad)
    if kernel == "onednn":
        xc = x.contiguous(memory_format=torch.channels_last)
        wr = torch.ops.mkldnn._reorder_convolution_weight(w, pad, stride, dil, 1, list(x.shape))
        return lambda: torch.ops.mkldnn._convolution_pointwise(xc, wr, b, pad, stride, dil, 1, "none", [], "")
    if kernel == "mkldnn":
        xm = x.to_mkldnn()
        wm = torch.ops.aten.mkldnn_reorder_conv2d_weight(w.to_mkldnn(), pad, stride, dil, 1, list(x.shape))
        return lambda: torch.ops.aten.mkldnn_convolution(xm, wm, b, pad, stride, dil, 1)
    raise ValueError(f"unknown kernel {kernel!r}")


def seconds_per_image(run: Callable[[], object], batch: int, min_s: float = 0.05, warm_up: bool = True) -> float:
    """Mean time of calls for at least `min_s` (after one warm-up call unless `warm_up` is False), per image."""
    with torch.inference_mode():
        if warm_up:
            run()
        n, t0 = 0, time.perf_counter()
        while True:
            run()
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_s:
                return elapsed / n / batch


@dataclass
class Best:
    kernel: str
    batch: int
    seconds: float  # per image, at search time
    table: dict[tuple[str, int], float]  # every (kernel, batch) tried -> seconds per image
    run: Callable[[], object]  # the winner, its inputs and weights prepared


def search(shapes: list[tuple[ConvShape, int]], batches: list[int], kernels: tuple[str, ...] = KERNELS) -> list[Best]:
    """For each shape, the fastest kernel and batch size (seconds per image, one layer)."""
    out = []
    for shape, _ in shapes:
        table, runs = {}, {}
        for kernel in kernels:
            for batch in batches:
                runs[(kernel, batch)] = runner(shape, kernel, batch)
                table[(kernel, batch)] = seconds_per_image(runs[(kernel, batch)], batch)
                if (kernel, batch) != min(table, key=table.__getitem__):
                    del runs[(kernel, batch)]  # keep only the best so far: inputs at batch 50 are large
        (kernel, batch), s = min(table.items(), key=lambda kv: kv[1])
        out.append(Best(kernel, batch, s, table, runs[(kernel, batch)]))
    return out


class Ceiling:
    """The best configuration of every shape, prepared once, timed again on demand (one round)."""

    def __init__(self, shapes: list[tuple[ConvShape, int]], best: list[Best]) -> None:
        self.shapes, self.best = shapes, best
        self.flops = sum(shape.flops * n for shape, n in shapes)
        self.round_seconds()  # warm: the search ran other kernels since

    def round_seconds(self) -> float:
        """Seconds per image of the whole network's convolutions at their best, each shape timed now, once (its
        kernel is warm from the search): about the cost of one batch through the network."""
        return sum(
            seconds_per_image(b.run, b.batch, min_s=0, warm_up=False) * n
            for b, (_, n) in zip(self.best, self.shapes, strict=True)
        )


def fid_inception_shapes() -> list[tuple[ConvShape, int]]:
    from pipeline.metrics.inception import build_fid_inception  # noqa: PLC0415

    return conv_shapes(build_fid_inception())


def print_table(
    shapes: list[tuple[ConvShape, int]], best: list[Best], batches: list[int], out: Callable[[str], object] = print
) -> float:
    """One line per shape: FLOP share, GFLOP/s of each kernel at its best batch, the winner; and the total.
    Returns the ceiling's seconds per image (from the search's timings)."""
    total = sum(s.flops * n for s, n in shapes)
    kernels = sorted({k for b in best for k, _ in b.table}, key=KERNELS.index)
    out(f"{'shape (in C x H x W, kernel/stride -> out C)':<34} {'n':>2} {'FLOPs':>6} "
          + " ".join(f"{k:>13}" for k in kernels) + "  best (GFLOP/s)")  # fmt: skip
    seconds = 0.0
    for (shape, n), b in zip(shapes, best, strict=True):
        per_kernel = [min(b.table[(k, bs)] for bs in batches) for k in kernels]
        cells = " ".join(f"{shape.flops / s / 1e9:13.1f}" for s in per_kernel)
        out(f"{str(shape):<34} {n:>2} {shape.flops * n / total:6.1%} {cells}  {b.kernel} b{b.batch} "
              f"({shape.flops / b.seconds / 1e9:.1f})")  # fmt: skip
        seconds += b.seconds * n
    out(
        f"ceiling at search: {total / seconds / 1e9:.1f} GFLOP/s = {1 / seconds:.2f} images/s "
        f"({total / 1e9:.2f} GFLOP/image), threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}"
    )
    return seconds
