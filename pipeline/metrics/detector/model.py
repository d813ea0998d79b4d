"""The `anime` face detector: facenet-pytorch's O-Net, fine-tuned to tell an anime face from anything else.

Usage:
    from pipeline.metrics.detector.model import load_detector
    detector = load_detector(params)        # reads <paths.detector>/detector.pt and meta.json
    found = detector.detect(images)         # uint8 (N, H, W, 3) -> bool (N,)
    probs = detector.scores(images)         # float64 (N,): the face probability that detect() thresholds
    detector.describe()                     # {"name": "anime", "threshold": ..., "weights_sha256": ..., ...}
    detector.unseen_faces                   # indices of the clean faces it never trained on (None: unknown)

It answers one question per image: does the whole frame hold an anime face, framed as the course's faces are?
Every image, whatever its size, is resized to O-Net's 48x48 input (antialiased bilinear, the same function the
training data goes through), so 64x64 samples and 96x96 originals are judged alike. The weights, the threshold
and the split they were chosen on are written by the `detector` stage (stages/detector.py). load_detector applies
the eval speed options (eval.bf16, eval.compile, eval.channels_last; pipeline/core/speed.py) to its forward pass;
`detector.speed` says which.
"""

from __future__ import annotations

import contextlib
import json
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from facenet_pytorch.models.mtcnn import ONet
from torch import nn

from pipeline.core.atomic import torch_bytes
from pipeline.core.config import Params
from pipeline.core.device import resolve_device
from pipeline.core.errors import UserError
from pipeline.core.hashing import sha256_file
from pipeline.core.manifest import check_manifest, is_number
from pipeline.core.speed import SpeedSettings, resolve_speed

log = logging.getLogger(__name__)

INPUT_SIZE = 48  # O-Net's input side; its dense layer is sized for it
WEIGHTS_FILE = "detector.pt"
META_FILE = "meta.json"
HOLDOUT_FILE = "holdout.npy"  # indices into faces.npy of the held-out faces


class FaceClassifier(nn.Module):
    """O-Net with only its face / not-face head in use; forward gives one logit per image.

    Takes float images (N, 3, 48, 48) in 0..255 and applies MTCNN's own input scaling, so the pretrained
    weights start from the inputs they were trained on.
    """

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        self.onet = ONet(pretrained=pretrained)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.onet
        x = (x - 127.5) * 0.0078125
        x = _pool(o.pool1, o.prelu1(o.conv1(x)))
        x = _pool(o.pool2, o.prelu2(o.conv2(x)))
        x = _pool(o.pool3, o.prelu3(o.conv3(x)))
        x = o.prelu4(o.conv4(x))
        x = x.permute(0, 3, 2, 1).contiguous()  # O-Net's dense5 was trained on this (transposed) layout
        x = o.prelu5(o.dense5(x.view(x.shape[0], -1)))
        logits = o.dense6_1(x)
        return logits[:, 1] - logits[:, 0]  # log-odds of "face": softmax over two logits is a sigmoid of this


def _pool(pool: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """O-Net's max pooling, run in channels_last: the same maxima (max is exact in any layout), and on CPU about 4x
    faster than torch's contiguous-layout kernel, which took longer than O-Net's convolutions. The output keeps the
    input's layout, so the convolutions compute exactly what they did."""
    if x.is_contiguous(memory_format=torch.channels_last):
        return pool(x)
    return pool(x.contiguous(memory_format=torch.channels_last)).contiguous()


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Float (N, 3, H, W) -> (N, 3, size, size), antialiased bilinear; identity when already that size."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in 0..255."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise UserError(f"detector input: expected uint8 (N, H, W, 3), got {images.dtype} {tuple(images.shape)}")
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> the detector's input: float32 (N, 3, 48, 48) in 0..255."""
    return resize(to_tensor(images), INPUT_SIZE)


@torch.no_grad()
def face_probabilities(
    model: nn.Module, inputs: torch.Tensor, batch_size: int = 512, speed: SpeedSettings | None = None
) -> np.ndarray:
    """Face probability of each 48x48 input (float (N, 3, 48, 48) 0..255), as float64; `model` may be compiled,
    and `speed` puts the inputs in its memory format and the forward under its autocast."""
    device = next(model.parameters()).device
    fmt = speed.memory_format if speed is not None else torch.contiguous_format
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(inputs), batch_size):
        with speed.autocast() if speed is not None else contextlib.nullcontext():
            logits = model(inputs[i : i + batch_size].to(device, memory_format=fmt))
        out.append(torch.sigmoid(logits.double()).cpu())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0)


class AnimeDetector:
    """A trained FaceClassifier plus the threshold chosen for it: detect() is scores() >= threshold."""

    name = "anime"

    def __init__(
        self,
        model: FaceClassifier,
        threshold: float,
        weights_sha256: str,
        meta: dict[str, Any],
        unseen_faces: np.ndarray | None = None,
        speed: SpeedSettings | None = None,
    ):
        self.speed = speed
        self.model = model.eval()
        if speed is not None:
            self.model.to(memory_format=speed.memory_format)
        self._forward = speed.compiled(self.model) if speed is not None else self.model
        self.threshold = float(threshold)
        self.weights_sha256 = weights_sha256
        self.meta = meta
        self.unseen_faces = unseen_faces

    def scores(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        out = [
            face_probabilities(self._forward, to_input(images[i : i + batch_size]), batch_size, self.speed)
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros(0)

    def detect(self, images: np.ndarray) -> np.ndarray:
        return self.scores(images) >= self.threshold

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "threshold": self.threshold,
            "weights_sha256": self.weights_sha256,
            "input_size": INPUT_SIZE,
            "seed": self.meta.get("seed"),
            "target_recall": self.meta.get("target_recall"),
        }


def save_detector(folder: Path, model: FaceClassifier, meta: dict[str, Any]) -> str:
    """Write weights and meta into `folder` (the caller builds it aside and swaps it in); return weights sha256."""
    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    (folder / WEIGHTS_FILE).write_bytes(torch_bytes(state))
    digest = sha256_file(folder / WEIGHTS_FILE)
    meta = {**meta, "weights_sha256": digest, "input_size": INPUT_SIZE}
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return digest


def load_detector(params: Params) -> AnimeDetector:
    """The detector the `detector` stage trained, from params.paths.detector, on the `device` param's device, with
    the eval speed options that apply there."""
    device = resolve_device(params.device)
    return load_detector_from(Path(params.paths.detector), device, resolve_speed(params.eval, device))


def check_detector_files(folder: Path, data_sha256: str) -> None:
    """UserError (rerun the detector stage) unless the weights, meta and held-out indices in `folder` are the
    files the detector stage wrote (their sha256 in its manifest, pipeline.core.manifest), trained on these clean
    faces (`data_sha256`, as pipeline.core.hashing.array_sha256 gives it). Retraining takes minutes to hours:
    evaluate refuses rather than retrain on its own."""
    folder = Path(folder)
    _require_files(folder)
    problem = check_manifest(folder, {"data_sha256": data_sha256}, only=[WEIGHTS_FILE, META_FILE, HOLDOUT_FILE])
    if problem is not None:
        raise UserError(f"anime detector unusable: {problem.reason}: rerun `animegan detector`")


def load_detector_from(
    folder: Path, device: torch.device | None = None, speed: SpeedSettings | None = None
) -> AnimeDetector:
    folder = Path(folder)
    weights = _require_files(folder)
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        threshold = meta["threshold"]
        if not is_number(threshold, 0.0, 1.0):
            raise ValueError(f"threshold {threshold!r} is not a probability")
        model = FaceClassifier(pretrained=False)
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        unseen = _holdout(folder / HOLDOUT_FILE)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError, pickle.UnpicklingError) as e:
        raise UserError(
            f"anime detector in {folder}/ is unreadable ({type(e).__name__}: {e}): rerun `animegan detector`"
        ) from None
    model.to(device or resolve_device("auto"))
    return AnimeDetector(model, float(threshold), sha256_file(weights), meta, unseen, speed)


def _require_files(folder: Path) -> Path:
    weights = folder / WEIGHTS_FILE
    if not weights.is_file() or not (folder / META_FILE).is_file():
        raise UserError(
            f"anime detector not found in {folder}/: run the detector stage first "
            "(`animegan detector` or `dvc repro detector`)"
        )
    return weights


def _holdout(path: Path) -> np.ndarray | None:
    """The held-out face indices (None when the file is absent: an older detector); ValueError unless a 1-D array
    of distinct non-negative integers."""
    if not path.is_file():
        return None
    indices = np.load(path, allow_pickle=False)
    if indices.ndim != 1 or indices.dtype.kind not in "iu" or (len(indices) and indices.min() < 0):
        raise ValueError(f"{HOLDOUT_FILE} holds {indices.dtype} {indices.shape}, not face indices")
    if len(np.unique(indices)) != len(indices):
        raise ValueError(f"{HOLDOUT_FILE} names a face twice")
    return indices.astype(np.int64)

