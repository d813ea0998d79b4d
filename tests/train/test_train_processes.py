"""train.processes: `animegan train` (and so `dvc repro`) starts the DDP processes itself through torch's launcher;
2 CPU processes (gloo) train exactly what torchrun's 2 do, a time budget stops both after the same step, and asking
for more processes than GPUs, or a failure in one process, is one line and exit 2.

The decisions of process_count are tested on described machines (pipeline.core.device.Machine, plain values): this
machine has no GPU. Every subprocess runs torch on one thread and sees no GPU (train_helpers.SUBPROCESS_ENV).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from dvc_project import BIN, dvc_project, run
from train_helpers import SUBPROCESS_ENV, tiny_params, write_faces
from workspace_weights import weights_sha256, workspace_from

from pipeline.core.device import Gpu, Machine
from pipeline.core.errors import EXIT_STOPPED, UserError
from pipeline.core.launch import process_count, under_launcher

T4 = Gpu(0, "Tesla T4", (7, 5), False)
KAGGLE_T4X2 = Machine(gpus=(T4, Gpu(1, "Tesla T4", (7, 5), False)), arch_list=("sm_75",), torch_version="2.6")
CPU_ONLY = Machine(torch_version="2.6")
MAC = Machine(mps=True, torch_version="2.6")


def test_auto_is_every_visible_gpu_and_one_process_elsewhere():
    assert process_count("auto", "auto", KAGGLE_T4X2) == 2
    assert process_count("auto", "cuda", KAGGLE_T4X2) == 2
    assert process_count("auto", "cuda:1", KAGGLE_T4X2) == 1  # one GPU named: one process
    assert process_count("auto", "cpu", KAGGLE_T4X2) == 1
    assert process_count("auto", "auto", CPU_ONLY) == 1 and process_count("auto", "auto", MAC) == 1
    assert process_count(2, "cpu", CPU_ONLY) == 2 and process_count(2, "auto", CPU_ONLY) == 2  # gloo
    assert process_count(2, "auto", KAGGLE_T4X2) == 2 and process_count(1, "cuda:1", KAGGLE_T4X2) == 1


@pytest.mark.parametrize(
    ("count", "device", "machine", "message"),
    [
        (3, "auto", KAGGLE_T4X2, "train.processes: 3 processes need 3 CUDA GPUs, but 2 are visible here"),
        (2, "cuda", CPU_ONLY, "train.processes: 2 processes need 2 CUDA GPUs, but 0 are visible here"),
        (2, "cuda:1", KAGGLE_T4X2, "device: cuda:1 names one GPU, but train.processes: 2 starts a process per GPU"),
        (2, "auto", MAC, "train.processes: MPS runs one process"),
    ],
)
def test_more_processes_than_the_device_allows_is_refused(count, device, machine, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        process_count(count, device, machine)


def test_under_torchrun_nothing_is_launched_again():
    assert under_launcher({"WORLD_SIZE": "2", "RANK": "1"}) and not under_launcher({})


def animegan_train(folder: Path, *sets: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "stages.cli", "train", *[w for item in sets for w in ("--set", item)]]
    return subprocess.run(cmd, cwd=folder, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=600)


def test_processes_beyond_the_gpus_is_one_line_and_exit_2_before_anything_is_written(tmp_path, faces):
    params = tiny_params(tmp_path)
    write_faces(params, faces)
    done = animegan_train(tmp_path, "device=cuda", "train.processes=2")  # this machine: no GPU
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: train.processes: 2 processes need 2 CUDA GPUs, but 0 are visible here: set train.processes to at "
        "most that (auto: every visible GPU), or device: cpu"
    ]
    assert not Path(params.paths.models).exists() and not Path(params.paths.metrics).exists()


def test_a_user_error_in_the_launched_processes_is_one_line_and_exit_2(tmp_path, faces):
    tiny_params(tmp_path, "train.processes=2")  # and no faces: each process finds none
    done = animegan_train(tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: clean faces not found: {tmp_path / 'data' / 'clean' / 'faces.npy'} (run the clean stage first: "
        "`animegan clean` or `dvc repro clean`)"
    )


@pytest.mark.slow
def test_two_gloo_processes_from_dvc_repro_and_animegan_train_equal_torchrun_and_stop_together_at_a_budget(tmp_path):
    proj, env = dvc_project(tmp_path, ("download", "clean", "train"), "train.processes=2", "train.checkpoint_every=2")
    done = run([str(BIN / "dvc"), "repro"], proj, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "starting 2 training processes" in done.stderr
    summary = json.loads((proj / "metrics" / "train.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 4
    from_repro = weights_sha256(proj / "models" / "generator.pt")

    launched = workspace_from(proj, tmp_path / "launched")  # train.processes: 2 from its params.yaml
    done = animegan_train(launched)
    assert done.returncode == 0, done.stderr[-3000:]
    reference = workspace_from(proj, tmp_path / "torchrun")  # torchrun's processes: train.processes is not used
    cmd = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "-m", "stages.cli", "train"]
    done = subprocess.run(cmd, cwd=reference, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "starting 2 training processes" not in done.stderr
    assert json.loads((reference / "metrics" / "train.json").read_text())["world_size"] == 2
    torchrun = weights_sha256(reference / "models" / "generator.pt")
    assert from_repro == weights_sha256(launched / "models" / "generator.pt") == torchrun

    stopped = workspace_from(proj, tmp_path / "stopped")  # the budget under DDP: both ranks stop after step 1
    done = animegan_train(stopped, "train.max_minutes=1e-05")
    assert done.returncode == EXIT_STOPPED, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1].startswith("stopped at the time budget (train.max_minutes 1e-05) "
                                                           "after step 1 of 4")  # fmt: skip
    assert "step 1: rank 0 weights" in done.stderr  # the extra checkpoint, with its check that the ranks agree
    done = animegan_train(stopped)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from step 1 of 4" in done.stderr
    assert weights_sha256(stopped / "models" / "generator.pt") == torchrun
