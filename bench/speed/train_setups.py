"""What the training benches of this room share: demo-size set-ups and a workspace `animegan train` runs in.

Usage:
    from bench.speed.train_setups import SETUPS, train_workspace, animegan_train
    folder = train_workspace(Path(tmp), "dcgan", ["train.max_steps=60"])   # params.yaml + data/clean/faces.npy
    ran = animegan_train(folder, ["train.processes=2"], threads=1)            # bench.common.Ran, not checked

The faces are the demo's (1,500 generated cartoon faces) drawn straight at 32 px, without the download and clean
stages; the params are the project's params.yaml with stages/demo_params.yaml's and the set-up's on top.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import yaml

from bench.common import REPO, Ran, run_timed
from pipeline.core.config import apply_override, load_params
from pipeline.data.cartoon import cartoon_faces
from stages.experiments import preset_settings, yaml_text

DEMO = yaml.safe_load((REPO / "stages" / "demo_params.yaml").read_text(encoding="utf-8"))
R3GAN_TINY = [f"{k}={yaml_text(v)}" for k, v in preset_settings("r3gan-tiny").items()
              if k not in ("train.batch_size", "train.epochs")]  # fmt: skip
SETUPS = {  # the demo's DCGAN, and the r3gan-tiny preset's recipe at the demo's size and batch
    "dcgan": [],
    "r3gan-tiny": R3GAN_TINY,
}


def flat(tree: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        if isinstance(value, dict):
            out += flat(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={yaml_text(value)}")
    return out


def train_workspace(folder: Path, setup: str, overrides: list[str] | tuple[str, ...] = ()) -> Path:
    """folder/params.yaml (every path inside folder) and folder/data/clean/faces.npy, ready for `animegan train`."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    for item in [*flat(DEMO["params"]), *SETUPS[setup], *overrides]:
        apply_override(raw, item)
    for key in raw["paths"]:
        raw["paths"][key] = str(folder / raw["paths"][key])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = load_params(folder / "params.yaml")  # every override valid
    faces = cartoon_faces(DEMO["faces"]["count"], params.data.image_size, seed=DEMO["faces"]["seed"])
    clean = Path(params.paths.clean)
    clean.mkdir(parents=True, exist_ok=True)
    np.save(clean / "faces.npy", faces)
    return folder


def animegan_train(folder: Path, sets: list[str] | tuple[str, ...] = (), timeout: float = 3600,
                   threads: int = 0) -> Ran:  # fmt: skip
    """`animegan train` in folder, timed; threads > 0: OMP_NUM_THREADS for it (and the processes it starts)."""
    cmd = [sys.executable, "-m", "stages.cli", "train", *[w for item in sets for w in ("--set", item)]]
    env = os.environ | {"ANIMEGAN_PROGRESS": "0", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}
    env = env | {"OMP_NUM_THREADS": str(threads)} if threads else env
    return run_timed(cmd, cwd=folder, env=env, timeout=timeout, check=False)
