"""Anime-face detection rate (AFD): the share of images in which a face detector finds a face, via a registry.

Usage:
    from pipeline.metrics.afd import get_detector, register
    detector = get_detector("mtcnn", params)         # params: pipeline.core.config.Params (reads params.eval.afd)
    found = detector.detect(images)                  # uint8 (N, H, W, 3) -> bool (N,)
    detector.describe()                              # {"name": "mtcnn", "thresholds": [...], ...} for provenance
    # the AFD metric itself, the share of images with a face: pipeline/metrics/scores/afd.py (detection_rate)
    register("mine", lambda params: MyDetector(...)) # any object with detect() and describe()

Detectors:
  - mtcnn: facenet-pytorch's MTCNN (human faces; its weights ship in the wheel, so it works offline). Images are
    upscaled by eval.afd.mtcnn_upscale (bicubic) first, and an image counts when some box has probability
    >= eval.afd.min_face_prob. It finds faces in only about 5% of real anime faces, so read its AFD beside
    afd_real (the same detector on real faces).
  - anime: pipeline.metrics.detector.model.load_detector(params), the O-Net fine-tuned by the `detector` stage.

Both run their networks' forward passes under the eval speed options that apply on their device (eval.bf16,
eval.compile, eval.channels_last; pipeline/core/speed.py); `detector.speed` says which (provenance.detector_speed).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image
from torch import nn

from pipeline.core.config import Params
from pipeline.core.device import resolve_device
from pipeline.core.errors import UserError
from pipeline.core.speed import SpeedSettings, resolve_speed

CHUNK = 256  # images per MTCNN call: bounds memory; results do not depend on it


class Detector(Protocol):
    def detect(self, images: np.ndarray) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


_REGISTRY: dict[str, Callable[[Params], Detector]] = {}


def register(name: str, factory: Callable[[Params], Detector]) -> None:
    _REGISTRY[name] = factory


def available() -> list[str]:
    return sorted(_REGISTRY)


def get_detector(name: str, params: Params) -> Detector:
    if name not in _REGISTRY:
        raise UserError(f"eval.afd.detector: unknown detector {name!r} (known: {', '.join(available())})")
    return _REGISTRY[name](params)


class MtcnnDetector:
    name = "mtcnn"

    def __init__(
        self,
        thresholds: list[float],
        upscale: int,
        min_face_prob: float,
        min_face_size: int,
        device: str = "cpu",
        speed: SpeedSettings | None = None,
    ) -> None:
        from facenet_pytorch import MTCNN

        self.thresholds = [float(t) for t in thresholds]
        self.upscale = int(upscale)
        self.min_face_prob = float(min_face_prob)
        self.min_face_size = int(min_face_size)
        self.speed = speed
        self.mtcnn = MTCNN(keep_all=True, thresholds=self.thresholds, min_face_size=self.min_face_size, device=device)
        if speed is not None and (speed.bf16 or speed.compile or speed.channels_last):
            for name in ("pnet", "rnet", "onet"):
                setattr(self.mtcnn, name, SpedUpNet(getattr(self.mtcnn, name), speed))

    def detect(self, images: np.ndarray) -> np.ndarray:
        found = np.zeros(len(images), dtype=bool)
        for start in range(0, len(images), CHUNK):
            batch = np.stack([self._upscaled(img) for img in images[start : start + CHUNK]])
            with torch.inference_mode():
                _, probs = self.mtcnn.detect(batch)
            for k, p in enumerate(probs):
                scores = [float(x) for x in np.atleast_1d(p) if x is not None]
                found[start + k] = bool(scores) and max(scores) >= self.min_face_prob
        return found

    def _upscaled(self, image: np.ndarray) -> np.ndarray:
        if self.upscale == 1:
            return image
        h, w = image.shape[:2]
        return np.asarray(Image.fromarray(image).resize((w * self.upscale, h * self.upscale), Image.Resampling.BICUBIC))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "package": "facenet-pytorch",
            "thresholds": self.thresholds,
            "upscale": self.upscale,
            "upscale_filter": "bicubic",
            "min_face_prob": self.min_face_prob,
            "min_face_size": self.min_face_size,
        }


class SpedUpNet(nn.Module):
    """One of MTCNN's three networks under the speed options: its input in their memory format, its forward
    compiled and/or under bf16 autocast, its outputs back in float32 for MTCNN's box arithmetic and NMS."""

    def __init__(self, net: nn.Module, speed: SpeedSettings) -> None:
        super().__init__()
        self.speed = speed
        self.net = net.to(memory_format=speed.memory_format)
        self.run = speed.compiled(self.net)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with self.speed.autocast():
            out = self.run(x.contiguous(memory_format=self.speed.memory_format))
        return tuple(o.float() for o in out)


def _mtcnn(params: Params) -> Detector:
    afd = params.eval.afd
    device = resolve_device(params.device)
    return MtcnnDetector(
        afd.mtcnn_thresholds, afd.mtcnn_upscale, afd.min_face_prob, afd.mtcnn_min_face_size, device,
        speed=resolve_speed(params.eval, device),
    )  # fmt: skip


def _anime(params: Params) -> Detector:
    # Imported on use: the module belongs to the detector stage and loads its weights from paths.detector.
    return importlib.import_module("pipeline.metrics.detector.model").load_detector(params)


register("mtcnn", _mtcnn)
register("anime", _anime)
