"""Tiny training set-ups for tests/train: 16x16 faces, 8-feature models, batch 8.

Tests run torch on one thread (conftest.py): these models are far too small to gain from two, and on a machine
whose cores are shared, competing OpenMP threads slow each step down tens of times. Subprocesses get
OMP_NUM_THREADS=1 (SUBPROCESS_ENV) so their numbers equal in-process ones bit for bit.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import yaml

from pipeline.core.config import Params, apply_override, load_params

REPO = Path(__file__).resolve().parents[2]
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "ANIMEGAN_PROGRESS": "0", "CUDA_VISIBLE_DEVICES": ""}
TINY = [
    "data.image_size=16",
    "train.dcgan.g_features=8",
    "train.dcgan.d_features=8",
    "train.batch_size=8",
    "train.grid_size=4",
    "train.checkpoint_every=2",
    "train.log_every=1",
    "train.max_steps=4",
]


def tiny_faces(count: int = 64, size: int = 16, seed: int = 0) -> np.ndarray:
    """Discs of random colour on random backgrounds: image-like, unlike noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    faces = np.empty((count, size, size, 3), dtype=np.uint8)
    for i in range(count):
        cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.4)
        inside = ((y - cy) ** 2 + (x - cx) ** 2) < r**2
        colour, background = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        faces[i] = np.where(inside[..., None], colour, background)
    return faces


def tiny_params(root: Path, *overrides: str) -> Params:
    """The repo's params with every path under root, TINY, then overrides; also written to root/params.yaml."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for key in raw["paths"]:
        raw["paths"][key] = str(root / raw["paths"][key])
    for item in [*TINY, *overrides]:
        apply_override(raw, item)
    path = root / "params.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_params(path)


def write_faces(params: Params, faces: np.ndarray) -> Path:
    path = Path(params.paths.clean) / "faces.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, faces)
    return path


def load_state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_tensors(a: dict, b: dict, where: str = "") -> None:
    """Every tensor equal bit for bit, recursively through dicts and lists."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b) or (a.isnan().any() and torch.equal(a.nan_to_num(), b.nan_to_num())), where
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys {set(a) ^ set(b)}"
        for k in a:
            assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def train_tiny(root: Path, faces: np.ndarray, *overrides: str, make_log=None, budget=None) -> dict:
    """train_gan on tiny_params(root, *overrides) in this process (with a time budget, if given); the summary."""
    from pipeline.core.distributed import init_distributed
    from pipeline.train.loop import TrainPaths, train_gan

    params = tiny_params(root, *overrides)
    models = Path(params.paths.models)
    paths = TrainPaths(checkpoint=models / "checkpoint.pt", generator=models / "generator.pt")
    return train_gan(faces, params.train, paths, init_distributed(), make_log=make_log, budget=budget)


def start_of(root: Path, faces: np.ndarray, *overrides: str) -> tuple[int | None, bytes]:
    """The step resumed() picks for tiny_params(root, *overrides) (None: from scratch), and the local checkpoint's
    bytes right after its decision, while its with still holds the sync lease."""
    from pipeline.core.distributed import init_distributed
    from pipeline.train.fingerprint import fingerprint
    from pipeline.train.plan import TrainPaths, plan_steps
    from pipeline.train.resume import resumed

    params = tiny_params(root, *overrides)
    models = Path(params.paths.models)
    paths = TrainPaths(checkpoint=models / "checkpoint.pt", generator=models / "generator.pt")
    dist = init_distributed()
    plan = plan_steps(params.train, len(faces), 1)
    with resumed(faces, params.train, plan, paths, dist, fingerprint(dist.device, 1, False)) as start:
        step = int(start.state["step"]) if start.state is not None else None
        return step, paths.checkpoint.read_bytes() if paths.checkpoint.exists() else b""


def checkpoint_of(root: Path) -> dict:
    """The checkpoint tiny_params(root) trains into."""
    return load_state(root / "models" / "checkpoint.pt")
