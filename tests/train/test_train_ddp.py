"""DDP under torchrun: 2 CPU processes (gloo) stay in sync and only rank 0 writes."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_helpers import SUBPROCESS_ENV, tiny_params, write_faces

from pipeline.train.generator_file import load_generator

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.parametrize(
    "variant",
    [["train.loss=gan"], ["train.loss=wgan-gp", "train.n_critic=2", "train.reuse_fake=false"]],
    ids=["gan-batchnorm", "wgan-gp"],
)
def test_two_gloo_ranks_stay_in_sync_and_only_rank_0_writes(tmp_path, faces, variant):
    params = tiny_params(tmp_path, "train.max_steps=4", "train.checkpoint_every=2", *variant)
    write_faces(params, faces)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER),
           str(tmp_path), *variant]  # fmt: skip
    done = subprocess.run(cmd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]

    assert not [p for p in (tmp_path / "rank1").rglob("*") if p.is_file()]  # rank 1 wrote nothing
    models = Path(params.paths.models)
    assert sorted(p.name for p in models.iterdir()) == [".train.lock", "best.pt", "checkpoint.pt", "generator.pt"]
    assert (Path(params.paths.metrics) / "train.json").is_file()
    assert torch.load(models / "checkpoint.pt", weights_only=True)["step"] == 4
    assert load_generator(models / "generator.pt")

    # every checkpoint compares a digest of G, D and EMA weights across ranks (and raises if they differ)
    digests = [re.findall(r"step (\d+): rank \d weights (\w+), equal on all 2 ranks", (tmp_path / f"rank{r}.log")
                          .read_text()) for r in (0, 1)]  # fmt: skip
    assert digests[0] == digests[1] and [s for s, _ in digests[0]] == ["2", "4"]
    assert digests[0][0][1] != digests[0][1][1]  # and the weights did change between the checks


def test_the_readme_torchrun_command(tmp_path, faces):
    """README: `torchrun --standalone --nproc_per_node=N -m stages.cli train`, here with 2 CPU ranks."""
    params = tiny_params(tmp_path, "train.max_steps=4")
    write_faces(params, faces)
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "stages.cli", "train",
           "--params", str(tmp_path / "params.yaml")]  # fmt: skip
    done = subprocess.run(cmd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((Path(params.paths.metrics) / "train.json").read_text())
    assert summary["steps"] == 4 and summary["world_size"] == 2, summary
