"""pytorch-fid's FID Inception (2048-d pool3 features): weights loading and fast, batch-size-independent features.

Usage:
    from pipeline.metrics.inception import load_backbone, extract_features
    backbone = load_backbone(weights="https://.../pt_inception-2015-12-05-6726825d.pth", sha256="",
                             cache_dir=Path("~/.cache/animegan"), calibration_seed=0, timeout_s=60)
    feats = extract_features(backbone, images_uint8_nhwc, batch_size=50)   # float32 (N, 2048)
    backbone = load_backbone(..., speed=resolve_speed(params.eval, device))  # bf16 / compile when they apply
    backbone.name            # "pytorch-fid" | "untrained"
    backbone.path()          # {"kernels": "onednn-blocks" | "onednn" | "eager", ...}: what ran, for provenance
    backbone.weights_sha256  # sha256 of the weights file; for `untrained`, of what its weights are made from

`weights` is one of:
  - an http(s):// or file:// URL: downloaded once into cache_dir (atomically) and verified against `sha256`, or,
    when that is empty, against the 8-hex-digit prefix in the file name as torch.hub does;
  - a local path to the state dict (verified against `sha256` when set);
  - `untrained`: a randomly initialised network from a fixed seed whose BatchNorm running statistics are set from
    a calibration batch of cartoon faces. With default statistics a random Inception's pool features vanish
    (about 1e-7) and every FID comes out near 0; calibrated ones separate image sets. For tests and offline demos
    only: its numbers are not comparable with anybody's FID. Its weights_sha256 hashes what defines it: the seeded
    initial weights and the calibration images (not the calibrated tensors, whose last bits depend on the CPU
    thread count), so a reference made with another seed or other calibration images is told apart. Calibrating
    takes seconds, so the result is kept in cache_dir/untrained/, named by everything its bits depend on (seed,
    calibration size, torch/torchvision/pytorch-fid versions, CPU capability, thread count, the source of this module
    and of the cartoon faces): a process that finds it loads the same tensors it would have computed.

The network is pytorch-fid's own architecture (its FIDInception blocks), fed exactly as pytorch-fid feeds it
(uint8 -> float /255 -> bilinear resize to 299 -> 2x-1), with speed-ups that keep features within float rounding of
pytorch-fid's: each BatchNorm folded into the convolution before it, channels_last memory layout, inference mode,
and on CPU oneDNN kernels (pipeline/metrics/inception_onednn.py): `kernels: onednn` runs each convolution and its
ReLU as one oneDNN call whose weights were reordered once, at load, into oneDNN's blocked layout; `onednn-blocks`
(the CPU default) also fuses the 1x1 convolutions that share an input and moves the average pools after their 1x1
convolution. `backbone.path()` says which of these ran, for provenance. bench/speed/inception_throughput.py measures
them against pytorch-fid and against the convolution ceiling of this CPU (bench/speed/conv_ceiling.py).

The speed options of pipeline/core/speed.py (eval.bf16, eval.compile) take PyTorch's eager modules instead: bf16
autocast (features within bf16 rounding of fp32's, so FID is no longer pytorch-fid's: `precision: bf16` in the path,
and FID references remember it) and torch.compile (one graph per batch shape). The Inception is always channels_last.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from pipeline.core.device import resolve_device
from pipeline.core.errors import UserError, one_line
from pipeline.core.hashing import sha256_file
from pipeline.core.speed import SpeedSettings
from pipeline.metrics.inception_onednn import fuse_blocks, fuse_layers, onednn_available

log = logging.getLogger(__name__)

UNTRAINED = "untrained"
FEATURE_DIM = 2048
CALIBRATION_COUNT = 32  # cartoon faces whose activations set the untrained network's BatchNorm statistics
CALIBRATION_SIZE = 64
# "onednn-blocks": Inception blocks rewritten around oneDNN convolutions (CPU; pipeline.metrics.inception_onednn);
# "onednn": each convolution + ReLU one oneDNN call (CPU); "eager": PyTorch's modules (any device)
KERNELS = ("onednn-blocks", "onednn", "eager")
_HASH_PREFIX = re.compile(r"-([a-f0-9]{8,})\.")  # torch.hub's convention: name-<sha256 prefix>.ext


@dataclass
class Backbone:
    model: nn.Module
    name: str  # "pytorch-fid" or "untrained"
    weights_sha256: str  # of the weights file; for "untrained", of its initial weights and calibration images
    device: torch.device
    calibration_seed: int | None = None
    kernels: str = "eager"  # one of KERNELS
    speed: SpeedSettings | None = None  # bf16 / compile (the module is then torch.compile's wrapper)

    @property
    def precision(self) -> str:
        return "bf16" if self.speed is not None and self.speed.bf16 else "fp32"

    def path(self) -> dict[str, Any]:
        """Which computation produced the features, for provenance."""
        return {"kernels": self.kernels, "batchnorm": "folded", "memory_format": "channels_last",
                "precision": self.precision, "compile": bool(self.speed and self.speed.compile)}  # fmt: skip


def build_fid_inception() -> nn.Module:
    """pytorch-fid's fid_inception_v3 architecture without its download: torchvision's Inception with FID blocks."""
    from pytorch_fid.inception import FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2

    net = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE_1(1280)
    net.Mixed_7c = FIDInceptionE_2(2048)
    return net


class PoolFeatures(nn.Module):
    """uint8 images (N, H, W, 3) -> pool3 features (N, 2048), the same computation as pytorch-fid's InceptionV3."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(
            net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, nn.MaxPool2d(kernel_size=3, stride=2),
            net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, nn.MaxPool2d(kernel_size=3, stride=2),
            net.Mixed_5b, net.Mixed_5c, net.Mixed_5d,
            net.Mixed_6a, net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e,
            net.Mixed_7a, net.Mixed_7b, net.Mixed_7c,
            nn.AdaptiveAvgPool2d(output_size=(1, 1)),
        )  # fmt: skip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float().div(255)  # what torchvision's ToTensor gives pytorch-fid
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = (2 * x - 1).contiguous(memory_format=torch.channels_last)
        return self.body(x).flatten(1)


def load_backbone(
    weights: str,
    sha256: str,
    cache_dir: Path | None,
    calibration_seed: int,
    timeout_s: float,
    device: str | None = None,
    kernels: str = "auto",
    speed: SpeedSettings | None = None,
) -> Backbone:
    """The feature network for eval.fid.weights (URL, local path or `untrained`), ready on `device`.

    `kernels`: "auto" (onednn-blocks on CPU when this PyTorch has oneDNN and neither bf16 nor compile is on,
    else eager), or one of KERNELS. `speed`: the resolved eval speed options (pipeline.core.speed.resolve_speed)
    for `device`."""
    if kernels not in ("auto", *KERNELS):
        raise ValueError(f"kernels must be auto, {', '.join(KERNELS)}, got {kernels!r}")
    dev = torch.device(device or resolve_device("auto"))
    eager_only = speed is not None and (speed.bf16 or speed.compile)  # autocast and inductor work on aten ops
    if kernels.startswith("onednn") and (dev.type != "cpu" or not onednn_available() or eager_only):
        raise ValueError(f"onednn kernels need a CPU device, a PyTorch with oneDNN, no bf16 or compile (on {dev})")
    if weights == UNTRAINED:
        state, digest = _untrained(calibration_seed, Path(cache_dir).expanduser() if cache_dir else None)
        name = UNTRAINED
    else:
        path, digest = _weights_file(weights, sha256, Path(cache_dir).expanduser(), timeout_s)
        state = _read_state(path)
        name = "pytorch-fid"
    net = build_fid_inception()
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"eval.fid.weights: not an FID Inception state dict ({one_line(e, 200)})") from None
    model = PoolFeatures(_fold_batchnorm(net.eval())).eval().to(dev).to(memory_format=torch.channels_last)
    for p in model.parameters():
        p.requires_grad_(False)
    if kernels == "auto":
        kernels = "onednn-blocks" if dev.type == "cpu" and onednn_available() and not eager_only else "eager"
    if kernels == "onednn-blocks":
        model = fuse_blocks(model)
    elif kernels == "onednn":
        model = fuse_layers(model)
    if speed is not None:
        model = speed.compiled(model)
    seed = calibration_seed if weights == UNTRAINED else None
    return Backbone(
        model=model, name=name, weights_sha256=digest, device=dev, calibration_seed=seed, kernels=kernels, speed=speed
    )


def extract_features(backbone: Backbone, images: np.ndarray, batch_size: int) -> np.ndarray:
    """float32 (N, 2048) pool3 features of uint8 (N, H, W, 3) images; the same for any batch size."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 (N, H, W, 3) images, got {images.dtype} {images.shape}")
    out = np.empty((len(images), FEATURE_DIM), dtype=np.float32)
    autocast = backbone.speed.autocast() if backbone.speed is not None else contextlib.nullcontext()
    with _no_tf32(), torch.inference_mode(), autocast:
        for start in range(0, len(images), batch_size):
            chunk = np.array(images[start : start + batch_size])  # a copy: `images` may be a read-only memmap
            batch = torch.from_numpy(chunk).to(backbone.device)
            out[start : start + len(batch)] = backbone.model(batch).float().cpu().numpy()
    return out


def _weights_file(weights: str, sha256: str, cache_dir: Path, timeout_s: float) -> tuple[Path, str]:
    """The weights file for eval.fid.weights, checked, and its sha256 (each file is hashed once)."""
    scheme = urlsplit(weights).scheme.lower()
    if scheme in ("http", "https", "file"):
        name = Path(unquote(urlsplit(weights).path)).name or "inception_weights.pth"
        target = cache_dir / name
        expected = sha256 or _name_prefix(name)
        if target.is_file():
            digest = sha256_file(target)
            if digest.startswith(expected):  # an empty `expected` trusts the cached file
                return target, digest
            log.warning("cached %s does not match its expected sha256; downloading it again", target)
        return target, _download(weights, target, expected, timeout_s)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UserError(f"eval.fid.weights: no such file {path} (give a URL, a local .pth file or 'untrained')")
    digest = sha256_file(path)
    if sha256 and digest != sha256:
        raise UserError(f"eval.fid.weights: {path} does not match eval.fid.sha256 ({sha256[:12]}...)")
    return path, digest


def _download(url: str, target: Path, expected: str, timeout_s: float) -> str:
    """Fetch `url` into `target` when its sha256 starts with `expected` (empty: any); return the sha256."""
    from pipeline.data.fetch import fetched

    hint = f"put the weights file at {target} (or set eval.fid.weights to a local path, or to 'untrained' for a demo)"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with fetched(url, beside=target, timeout_s=timeout_s) as f:
            digest = f.sha256
            if digest.startswith(expected):
                os.replace(f.path, target)  # same folder: atomic; the cache never holds a partial file
    except UserError as e:
        raise UserError(f"Inception weights unavailable: {one_line(e)}; {hint}") from None
    if not digest.startswith(expected):
        raise UserError(f"Inception weights from {url} have sha256 {digest[:16]}..., expected {expected}")
    if not expected:
        log.warning("%s has no hash to check (set eval.fid.sha256); recording %s", url, digest)
    log.info("cached Inception weights at %s", target)
    return digest


def _name_prefix(name: str) -> str:
    m = _HASH_PREFIX.search(name)
    return m.group(1) if m else ""


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated or foreign file
        raise UserError(f"eval.fid.weights: cannot read {path} ({one_line(e, 200)})") from None
    if not isinstance(state, dict):
        raise UserError(f"eval.fid.weights: {path} is not a state dict")
    return state


def _untrained_state(seed: int) -> dict[str, torch.Tensor]:
    return _untrained(seed, None)[0]


@functools.lru_cache(maxsize=2)
def _untrained(seed: int, cache_dir: Path | None) -> tuple[dict[str, torch.Tensor], str]:
    """The calibrated untrained network's state and the sha256 of its inputs: from cache_dir when an earlier process
    on this machine made it, else calibrated here and saved there (atomically; a cache that cannot be written is
    skipped). Cached per process too."""
    file = cache_dir / "untrained" / f"fid-inception-seed{seed}-{_untrained_key(seed)[:20]}.pt" if cache_dir else None
    if file is not None and file.is_file():
        try:
            saved = torch.load(file, map_location="cpu", weights_only=True)
            return saved["state"], saved["digest"]
        except Exception as e:  # a damaged file: calibrate again and replace it
            log.warning("ignoring unreadable %s (%s)", file, one_line(e, 120))
    state, digest = _calibrated(seed)
    if file is not None:
        partial = file.with_name(f".{file.name}.{os.getpid()}.tmp")
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"state": state, "digest": digest}, partial)
            os.replace(partial, file)
        except OSError as e:
            log.warning("could not cache the untrained backbone in %s (%s)", file.parent, one_line(e, 120))
            partial.unlink(missing_ok=True)
    return state, digest


def _untrained_key(seed: int) -> str:
    """sha256 of everything the calibrated tensors' bits depend on; the cache file is named by it."""
    import pytorch_fid

    from pipeline.data import cartoon

    digest = hashlib.sha256()
    versions = (torch.__version__, torchvision.__version__, pytorch_fid.__version__)
    machine = (torch.backends.cpu.get_cpu_capability(), torch.get_num_threads())  # oneDNN's kernels and sums
    for part in (seed, CALIBRATION_COUNT, CALIBRATION_SIZE, *versions, *machine):
        digest.update(f"{part}\n".encode())
    for module in (__file__, cartoon.__file__):
        digest.update(Path(module).read_bytes())
    return digest.hexdigest()


def _calibrated(seed: int) -> tuple[dict[str, torch.Tensor], str]:
    """Random weights from `seed`, BatchNorm statistics from cartoon faces, and the sha256 of those two inputs."""
    from pipeline.data.cartoon import cartoon_faces

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_fid_inception()
    calib = cartoon_faces(count=CALIBRATION_COUNT, size=CALIBRATION_SIZE, seed=seed)
    digest = _inputs_sha256(net.state_dict(), calib)
    features = PoolFeatures(net)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one batch, running stats = that batch's statistics
    features.train()
    with _no_tf32(), torch.no_grad():
        features(torch.from_numpy(calib))
    net.eval()
    return {k: v.detach().clone() for k, v in net.state_dict().items()}, digest


def _inputs_sha256(state: dict[str, torch.Tensor], calibration: np.ndarray) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key} {tensor.dtype} {tuple(tensor.shape)}\n".encode())
        digest.update(tensor.numpy().tobytes())
    digest.update(f"calibration {calibration.dtype} {calibration.shape}\n".encode())
    digest.update(np.ascontiguousarray(calibration).tobytes())
    return digest.hexdigest()


def _fold_batchnorm(net: nn.Module) -> nn.Module:
    """Fold each BasicConv2d's BatchNorm into its convolution (eval mode only): the same function, fewer passes."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for m in net.modules():
        if isinstance(m, torchvision.models.inception.BasicConv2d) and isinstance(m.bn, nn.BatchNorm2d):
            m.conv = fuse_conv_bn_eval(m.conv, m.bn)
            m.bn = nn.Identity()
    return net


@contextlib.contextmanager
def _no_tf32():
    """TF32 matmuls/convolutions change features on Ampere+ GPUs; FID wants full fp32."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
