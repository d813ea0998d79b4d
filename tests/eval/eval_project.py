"""Helpers for the eval tests: a tiny project (clean faces, generator, params) in a temporary folder.

The faces are cartoon faces (pipeline.data.cartoon) and the generator a small, randomly initialised DCGAN; the FID
backbone is `untrained` (the real pytorch-fid weights cannot be downloaded here), so numbers are not meaningful,
only their determinism and plumbing are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipeline.core.config import Params, load_params
from pipeline.data.cartoon import cartoon_faces
from pipeline.train.families.dcgan import Generator
from pipeline.train.generator_file import generator_config, save_generator

REPO = Path(__file__).resolve().parents[2]
IMAGE_SIZE = 16


def tiny_generator(seed: int = 0, image_size: int = IMAGE_SIZE) -> Generator:
    torch.manual_seed(seed)
    return Generator(z_dim=8, g_features=4, image_size=image_size).eval()


def make_project(root: Path, faces: int = 16, sample_count: int = 8, repeats: int = 2) -> list[str]:
    """Write clean faces and a generator under root; return the --set overrides that point params at them."""
    clean = root / "data" / "clean"
    clean.mkdir(parents=True)
    np.save(clean / "faces.npy", cartoon_faces(count=faces, size=IMAGE_SIZE, seed=3))
    gen = tiny_generator()
    save_generator(root / "models" / "generator.pt", gen, generator_config("dcgan", 8, 4, IMAGE_SIZE))
    paths = {
        "clean": "data/clean", "fid_reference": "data/fid_reference", "copy_index": "data/copy_index",
        "models": "models", "samples": "samples",
        "submission": "submission.tgz", "metrics": "metrics", "plots": "plots",
    }  # fmt: skip
    return [f"paths.{k}={root / v}" for k, v in paths.items()] + [
        f"sample.count={sample_count}",
        "sample.batch_size=5",
        f"eval.repeats={repeats}",
        "eval.fid.weights=untrained",
        f"eval.fid.cache_dir={root / 'cache'}",
        "eval.fid.batch_size=8",
        "eval.kid.subsets=5",
        "eval.kid.subset_size=6",
        "eval.afd.real_count=6",
        "eval.afd.detector=mtcnn",  # needs no detector stage; tests/detector covers the default, anime
    ]


def project_params(overrides: list[str]) -> Params:
    return load_params(REPO / "params.yaml", overrides)
