"""The FID Inception's CPU kernels: oneDNN convolutions with ReLU fused, and whole blocks rewritten around them.

Usage:
    from pipeline.metrics.inception_onednn import onednn_available, fuse_layers, fuse_blocks
    model = fuse_layers(pool_features)   # kernels "onednn": each BasicConv2d -> one oneDNN convolution + ReLU
    model = fuse_blocks(pool_features)   # kernels "onednn-blocks": the same, and each Inception block rewritten

Both take pipeline.metrics.inception's PoolFeatures with every BatchNorm already folded into its convolution, and
give the same function up to float rounding (tests compare them with pytorch-fid's features).

`fuse_layers` runs each convolution and its ReLU as one oneDNN call on weights reordered once, at build, into
oneDNN's blocked layout (eager PyTorch reorders them on every call and runs ReLU as another pass over memory).

`fuse_blocks` also rewrites what a profile of `fuse_layers` showed costs time besides the convolutions:
  - the 1x1 convolutions that read the same input (three per Inception A, C and E block, two in Mixed_7a) run as
    one wider convolution whose output is split: one read of the input, one call, a wider matrix product. The
    split outputs that feed another convolution are copied (oneDNN wants them dense), and it still pays: 1.18x
    the per-layer kernels' images/s against 1.10x for the same rewrite with the 1x1s left apart (batch 16, 3
    interleaved rounds, load average 9.5 on 2 cores: indicative);
  - the average-pool branches pool after their 1x1 convolution instead of before: avg_pool (count_include_pad=
    False: weights that sum to 1) commutes with a 1x1 convolution and its bias, and the pool then runs over its 32
    to 192 output channels instead of the block's 192 to 1280 input channels; its ReLU follows the pool;
  - the E blocks concatenate their six branch outputs once (pytorch-fid concatenates the 3x3 pairs first);
  - the input scaling runs in place (no new 299x299 tensors). Folding it into the first convolution's weights
    would save one more pass (about 1% of the time) but moved the untrained network's features by 2e-5 of their
    range, a fifth of the 1e-4 budget, so it stays as pytorch-fid computes it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

BasicConv2d = torchvision.models.inception.BasicConv2d


def onednn_available() -> bool:
    """Whether this PyTorch has oneDNN and the fused convolution ops these kernels call (private ops)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return all(hasattr(torch.ops.mkldnn, op) for op in ("_convolution_pointwise", "_reorder_convolution_weight"))
    except (AttributeError, RuntimeError):
        return False


class OneDnnConv(nn.Module):
    """conv(x) (+ ReLU when `relu`) as one oneDNN call on weights reordered once into oneDNN's blocked layout.
    CPU only; the same numbers as the eager convolution (+ ReLU)."""

    def __init__(
        self, weight: torch.Tensor, bias: torch.Tensor, conv: nn.Conv2d, input_size: list[int], relu: bool = True
    ) -> None:
        super().__init__()
        self.padding, self.stride, self.dilation = list(conv.padding), list(conv.stride), list(conv.dilation)
        self.groups = conv.groups
        self.attr = "relu" if relu else "none"
        # oneDNN picks the blocked layout for an input size (here one image); the features do not depend on it
        # (tests compare batch sizes) and the layout runs at full speed for any batch size (measured).
        self.weight = torch.ops.mkldnn._reorder_convolution_weight(
            weight.detach().contiguous(), self.padding, self.stride, self.dilation, self.groups, input_size
        )  # an opaque oneDNN tensor, not a parameter: the module is built for inference on CPU and never moved
        self.bias = bias.detach().clone()

    @classmethod
    def of(cls, *blocks: BasicConv2d, input_size: list[int], relu: bool = True) -> OneDnnConv:
        """One convolution computing the BasicConv2d `blocks` (same input, same kernel) side by side."""
        convs = [b.conv for b in blocks]
        assert all(isinstance(b.bn, nn.Identity) for b in blocks), "fold BatchNorm first"
        weight = torch.cat([c.weight for c in convs])
        bias = torch.cat([c.bias for c in convs])
        return cls(weight, bias, convs[0], input_size, relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._convolution_pointwise(
            x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups, self.attr, [], ""
        )


def _input_sizes(model: nn.Module) -> dict[nn.Module, list[int]]:
    """The input size of every BasicConv2d for one image (any image size: the network resizes to 299x299)."""
    sizes: dict[nn.Module, list[int]] = {}
    convs = [m for m in model.modules() if isinstance(m, BasicConv2d)]
    assert convs and all(isinstance(m.bn, nn.Identity) for m in convs), "fold BatchNorm first"
    hooks = [m.register_forward_pre_hook(lambda m, args: sizes.__setitem__(m, list(args[0].shape))) for m in convs]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 8, 8, 3, dtype=torch.uint8))
    finally:
        for h in hooks:
            h.remove()
    return sizes


def fuse_layers(model: nn.Module) -> nn.Module:
    """Replace every BasicConv2d (BatchNorm already folded) by its OneDnnConv with ReLU, in place."""
    sizes = _input_sizes(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if child in sizes:
                setattr(parent, name, OneDnnConv.of(child, input_size=sizes[child]))
    return model


class _Block(nn.Module):
    """Base of the rewritten blocks: `conv(*blocks)` builds the OneDnnConv of some of its BasicConv2d."""

    def __init__(self, sizes: dict[nn.Module, list[int]]) -> None:
        super().__init__()
        self._sizes = sizes

    def conv(self, *blocks: BasicConv2d, relu: bool = True) -> OneDnnConv:
        return OneDnnConv.of(*blocks, input_size=self._sizes[blocks[0]], relu=relu)


def _pool_then_relu(y: torch.Tensor) -> torch.Tensor:
    """The average-pool branch after its convolution (see the module docstring): pool, then ReLU."""
    return F.avg_pool2d(y, kernel_size=3, stride=1, padding=1, count_include_pad=False).relu_()


class BlockA(_Block):
    """FIDInceptionA: branches 1x1, 5x5 and double 3x3 (their first 1x1 convolutions fused) and an average pool."""

    def __init__(self, b: nn.Module, sizes: dict[nn.Module, list[int]]) -> None:
        super().__init__(sizes)
        self.head = self.conv(b.branch1x1, b.branch5x5_1, b.branch3x3dbl_1)
        self.split = [b.branch1x1.conv.out_channels, b.branch5x5_1.conv.out_channels,
                      b.branch3x3dbl_1.conv.out_channels]  # fmt: skip
        self.b5x5_2 = self.conv(b.branch5x5_2)
        self.b3x3dbl_2, self.b3x3dbl_3 = self.conv(b.branch3x3dbl_2), self.conv(b.branch3x3dbl_3)
        self.pool = self.conv(b.branch_pool, relu=False)
        del self._sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1, b5, b3 = self.head(x).split(self.split, 1)
        b5 = self.b5x5_2(b5)
        b3 = self.b3x3dbl_3(self.b3x3dbl_2(b3))
        return torch.cat([b1, b5, b3, _pool_then_relu(self.pool(x))], 1)


class BlockC(_Block):
    """FIDInceptionC: branches 1x1, 7x7 and double 7x7 (their first 1x1 convolutions fused) and an average pool."""

    def __init__(self, b: nn.Module, sizes: dict[nn.Module, list[int]]) -> None:
        super().__init__(sizes)
        self.head = self.conv(b.branch1x1, b.branch7x7_1, b.branch7x7dbl_1)
        self.split = [b.branch1x1.conv.out_channels, b.branch7x7_1.conv.out_channels,
                      b.branch7x7dbl_1.conv.out_channels]  # fmt: skip
        self.b7 = nn.Sequential(self.conv(b.branch7x7_2), self.conv(b.branch7x7_3))
        self.b7dbl = nn.Sequential(*(self.conv(getattr(b, f"branch7x7dbl_{i}")) for i in range(2, 6)))
        self.pool = self.conv(b.branch_pool, relu=False)
        del self._sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1, b7, b7dbl = self.head(x).split(self.split, 1)
        return torch.cat([b1, self.b7(b7), self.b7dbl(b7dbl), _pool_then_relu(self.pool(x))], 1)


class BlockE(_Block):
    """FIDInceptionE_1 (average pool) and E_2 (max pool, which does not commute with the convolution)."""

    def __init__(self, b: nn.Module, sizes: dict[nn.Module, list[int]], max_pool: bool) -> None:
        super().__init__(sizes)
        self.head = self.conv(b.branch1x1, b.branch3x3_1, b.branch3x3dbl_1)
        self.split = [b.branch1x1.conv.out_channels, b.branch3x3_1.conv.out_channels,
                      b.branch3x3dbl_1.conv.out_channels]  # fmt: skip
        self.b3x3_2a, self.b3x3_2b = self.conv(b.branch3x3_2a), self.conv(b.branch3x3_2b)
        self.b3x3dbl_2 = self.conv(b.branch3x3dbl_2)
        self.b3x3dbl_3a, self.b3x3dbl_3b = self.conv(b.branch3x3dbl_3a), self.conv(b.branch3x3dbl_3b)
        self.max_pool = max_pool
        self.pool = self.conv(b.branch_pool, relu=max_pool)
        del self._sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1, b3, b3dbl = self.head(x).split(self.split, 1)
        b3 = b3.contiguous(memory_format=torch.channels_last)  # once: each oneDNN call would make its own copy
        b3dbl = self.b3x3dbl_2(b3dbl)
        if self.max_pool:
            pool = self.pool(F.max_pool2d(x, kernel_size=3, stride=1, padding=1))
        else:
            pool = _pool_then_relu(self.pool(x))
        return torch.cat(
            [b1, self.b3x3_2a(b3), self.b3x3_2b(b3), self.b3x3dbl_3a(b3dbl), self.b3x3dbl_3b(b3dbl), pool], 1
        )


class BlockD(_Block):
    """Mixed_7a (torchvision's InceptionD): its two 1x1 convolutions fused, and a max pool."""

    def __init__(self, b: nn.Module, sizes: dict[nn.Module, list[int]]) -> None:
        super().__init__(sizes)
        self.head = self.conv(b.branch3x3_1, b.branch7x7x3_1)
        self.split = [b.branch3x3_1.conv.out_channels, b.branch7x7x3_1.conv.out_channels]
        self.b3x3_2 = self.conv(b.branch3x3_2)
        self.b7 = nn.Sequential(*(self.conv(getattr(b, f"branch7x7x3_{i}")) for i in range(2, 5)))
        del self._sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3, b7 = self.head(x).split(self.split, 1)
        return torch.cat([self.b3x3_2(b3), self.b7(b7), F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class BlockB(_Block):
    """Mixed_6a (torchvision's InceptionB): nothing to fuse (its convolutions on x differ in kernel), ReLU fused."""

    def __init__(self, b: nn.Module, sizes: dict[nn.Module, list[int]]) -> None:
        super().__init__(sizes)
        self.b3x3 = self.conv(b.branch3x3)
        self.b3x3dbl = nn.Sequential(*(self.conv(getattr(b, f"branch3x3dbl_{i}")) for i in range(1, 4)))
        del self._sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b3x3(x), self.b3x3dbl(x), F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class BlocksNetwork(nn.Module):
    """uint8 images (N, H, W, 3) -> pool3 features (N, 2048), PoolFeatures rewritten block by block."""

    def __init__(self, body: nn.Sequential, sizes: dict[nn.Module, list[int]]) -> None:
        super().__init__()
        from pytorch_fid.inception import FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2

        inc = torchvision.models.inception
        layers: list[nn.Module] = []
        for m in body:
            if isinstance(m, BasicConv2d):
                layers.append(OneDnnConv.of(m, input_size=sizes[m]))
            elif isinstance(m, FIDInceptionA):
                layers.append(BlockA(m, sizes))
            elif isinstance(m, FIDInceptionC):
                layers.append(BlockC(m, sizes))
            elif isinstance(m, (FIDInceptionE_1, FIDInceptionE_2)):
                layers.append(BlockE(m, sizes, max_pool=isinstance(m, FIDInceptionE_2)))
            elif isinstance(m, inc.InceptionB):
                layers.append(BlockB(m, sizes))
            elif isinstance(m, inc.InceptionD):
                layers.append(BlockD(m, sizes))
            elif isinstance(m, (nn.MaxPool2d, nn.AdaptiveAvgPool2d)):
                layers.append(m)
            else:
                raise TypeError(f"fuse_blocks does not know {type(m).__name__}")
        self.body = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).to(torch.float32, copy=True).div_(255)  # PoolFeatures' steps, in place
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False).mul_(2).sub_(1)
        return self.body(x.contiguous(memory_format=torch.channels_last)).flatten(1)


def fuse_blocks(model: nn.Module) -> nn.Module:
    """A BlocksNetwork computing `model` (PoolFeatures, BatchNorm folded): see the module docstring."""
    sizes = _input_sizes(model)
    return BlocksNetwork(model.body, sizes).eval()
