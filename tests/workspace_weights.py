"""What tests compare between two workspaces that trained the same params: the generator's weights, and a copy of a
workspace's inputs to train again outside DVC.

Usage (from any test file: tests/ is on sys.path):
    from workspace_weights import weights_sha256, workspace_from
    straight = workspace_from(proj, tmp_path / "straight")    # its clean faces and params.yaml, nothing else
    ...                                                        # `animegan train` there, start to end
    assert weights_sha256(proj / "models" / "generator.pt") == weights_sha256(straight / "models" / "generator.pt")
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import torch


def weights_sha256(generator: Path) -> str:
    """sha256 of a generator.pt's tensors (names and bytes): equal for equal weights, whatever else the file holds."""
    state = torch.load(generator, map_location="cpu", weights_only=True)["state_dict"]
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode() + state[key].numpy().tobytes())
    return digest.hexdigest()


def workspace_from(workspace: Path, folder: Path) -> Path:
    """A plain folder with workspace's clean faces and params.yaml: where `animegan train` runs outside DVC."""
    shutil.copytree(workspace / "data" / "clean", folder / "data" / "clean")
    shutil.copy(workspace / "params.yaml", folder / "params.yaml")
    return folder
