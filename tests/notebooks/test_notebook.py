"""notebooks/animegan.ipynb as a student meets it: Run all, cut off, Run all again (resumes), and again (results only).

The notebook is executed by nbclient in a real kernel (this venv's Python): it clones a git copy of this project
(its working tree, committed in a temp dir, standing in for REPO_URL), checks the device, runs `animegan exp
baseline` (the whole DVC pipeline) on generated cartoon faces served as DATA_URL, with the demo's small settings,
then shows the grid, the curves and the metrics and copies submission.tgz into its working folder.

The long test runs it four times in one workspace: the first Run all is cut off by killing the kernel and every
process under it once training has written a checkpoint (what a disconnect does); the second resumes from that
checkpoint and finishes, with a generator equal to an uninterrupted training's; the third shows the results
without running any stage; the fourth, with a larger EPOCHS, extends the run. The short tests run only the cells
before training: the one-line stop without code, a plain folder as REPO_DIR, and Colab's and Kaggle's paths (their
environment variables set here as the platforms set them; a plain folder stands in for the Drive mount and stand-in
secrets modules for the platforms' own), which stop at the device check in one line because this machine has no
GPU. Not exercised: the `pip install -e .` cell's install (it would repoint this venv's editable install at the
temp copy; ANIMEGAN_NOTEBOOK_INSTALLED makes it use the installed animegan), mounting a real Drive, and a GPU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest
import torch
import yaml
from demo_workspace import SAMPLE_COUNT, SMALL_EVAL
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError
from workspace_weights import weights_sha256, workspace_from

from pipeline.data.cartoon import write_faces_zip

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "animegan.ipynb"
BIN = Path(sys.executable).parent
COPY = ("pipeline", "stages", "notebooks", "dvc.yaml", "params.yaml", "pyproject.toml", ".dvcignore", ".gitignore")
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@localhost"}  # fmt: skip
PLATFORM_VARS = ("COLAB_RELEASE_TAG", "COLAB_GPU", "KAGGLE_KERNEL_RUN_TYPE")
SETUP_CELLS = 6  # markdown, parameters, markdown, where the project lives, markdown, install + device check

# The demo's settings, then smaller still: 300 faces at 32 px, 9 steps an epoch, the tests' smaller scoring, and a
# checkpoint every 3 steps (not in dvc.yaml's params: it does not change what is trained) for the cut-off to land.
TINY = ["train.log_every=3", "train.checkpoint_every=3", *SMALL_EVAL]
EPOCHS, MORE_EPOCHS, STEPS_PER_EPOCH = 4, 5, 9


def flat(tree: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        if isinstance(value, dict):
            out += flat(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")
    return out


def project_repo(folder: Path) -> Path:
    """This working tree's project, committed in a fresh git + DVC repository (what REPO_URL would clone)."""
    project_folder(folder)
    env = os.environ | GIT_ENV
    for cmd in (["git", "init", "-q"], [str(BIN / "dvc"), "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "project"]):  # fmt: skip
        subprocess.run(cmd, cwd=folder, env=env, check=True, capture_output=True)
    return folder


def project_folder(folder: Path) -> Path:
    """This working tree's project files as a plain folder (an upload, a Kaggle dataset): no .git, no .dvc."""
    for name in COPY:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, folder / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
        else:
            shutil.copy(src, folder / name)
    return folder


def demo_settings() -> list[str]:
    demo = yaml.safe_load((REPO / "stages" / "demo_params.yaml").read_text(encoding="utf-8"))["params"]
    demo["train"].pop("epochs")  # EPOCHS says it
    merged = dict(item.split("=", 1) for item in flat(demo) + TINY)  # TINY's value wins
    return [f"{key}={value}" for key, value in merged.items()]


def notebook(overrides: dict[str, Any], cells: int | None = None) -> nbformat.NotebookNode:
    """The notebook with `overrides` injected after its parameters cell (as papermill does), cut to `cells`."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    if cells is not None:
        nb.cells = nb.cells[:cells]
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{k} = {v!r}" for k, v in overrides.items())
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    return nb


def kernel_env(monkeypatch: pytest.MonkeyPatch, workdir: Path, **extra: str) -> None:
    """The kernel and the commands it starts inherit these; no platform variable unless given."""
    env = {"ANIMEGAN_NOTEBOOK_INSTALLED": "1", "ANIMEGAN_PROGRESS": "0", "PYTHONPATH": str(workdir),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **GIT_ENV, **extra}  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in PLATFORM_VARS:
        if key not in extra:
            monkeypatch.delenv(key, raising=False)


def run_all(nb: nbformat.NotebookNode, here: Path, record: Path) -> tuple[str, set[str], float]:
    """Execute every cell as Run all does: (the text it printed, the output kinds it displayed, wall seconds)."""
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(here)}}).execute()
    finally:
        nbformat.write(nb, record)  # to read when it fails
    return outputs_text(nb), output_kinds(nb), time.perf_counter() - start


def outputs_text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            parts.append(out.get("text", "") + "".join(out.get("traceback", [])))
    return "".join(parts)


def output_kinds(nb: nbformat.NotebookNode) -> set[str]:
    return {k for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) for k in o.get("data", {})}


def cut_off_when(nb: nbformat.NotebookNode, here: Path, checkpoint: Path) -> float:
    """Run all, and once `checkpoint` exists SIGKILL the kernel and every process under it (a disconnect)."""
    client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(here)}})
    failure: list[BaseException] = []

    def execute() -> None:
        try:
            client.execute()
        except BaseException as e:  # the dead kernel, as expected
            failure.append(e)

    start = time.perf_counter()
    runner = threading.Thread(target=execute, daemon=True)
    runner.start()
    while not checkpoint.exists():
        assert runner.is_alive(), f"the notebook ended before training wrote a checkpoint: {failure}"
        time.sleep(0.02)
    kernels = [p for p in psutil.Process().children() if "ipykernel" in " ".join(p.cmdline())]
    assert len(kernels) == 1, kernels
    tree = [*kernels[0].children(recursive=True), kernels[0]]
    for proc in tree:  # all at once, as a machine going away: nothing gets to clean up
        proc.kill()
    psutil.wait_procs(tree, timeout=30)
    elapsed = time.perf_counter() - start
    runner.join(timeout=120)
    assert not runner.is_alive() and failure and isinstance(failure[0], (DeadKernelError, CellExecutionError))
    return elapsed


def uninterrupted_generator(workdir: Path, folder: Path) -> Path:
    """`animegan train` once, start to end, on the workspace's clean faces and params: the generator to match."""
    workspace_from(workdir, folder)
    done = subprocess.run([str(BIN / "animegan"), "train", "--set", "train.checkpoint_every=100000"], cwd=folder,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return folder / "models" / "generator.pt"


def checkpoint_step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["step"])


def needs_tools() -> None:
    if shutil.which("git") is None or not (BIN / "dvc").exists() or not (BIN / "animegan").exists():
        pytest.skip("needs git, and dvc + animegan installed in the venv running the tests")


@pytest.mark.slow
def test_run_all_cut_off_then_resumes_then_shows_results_then_extends(tmp_path, monkeypatch, capsys):
    needs_tools()
    origin = project_repo(tmp_path / "origin")
    faces = write_faces_zip(tmp_path / "faces.zip", count=300, size=48, seed=0)
    workdir, here = tmp_path / "platform" / "animegan", tmp_path / "notebook-folder"
    here.mkdir()
    overrides = {"EPOCHS": EPOCHS, "DATA_URL": faces.as_uri(), "WORKDIR": str(workdir), "REPO_URL": str(origin),
                 "SETTINGS": demo_settings()}  # fmt: skip
    kernel_env(monkeypatch, workdir)
    checkpoint, generator = workdir / "models" / "checkpoint.pt", workdir / "models" / "generator.pt"
    total = EPOCHS * STEPS_PER_EPOCH

    first_s = cut_off_when(notebook(overrides), here, checkpoint)
    killed_at = checkpoint_step(checkpoint)
    assert 0 < killed_at < total and not generator.exists()

    text, kinds, resumed_s = run_all(notebook(overrides), here, tmp_path / "resumed.ipynb")
    assert f"baseline: resuming from step {killed_at} of {total}" in text
    assert "device: auto -> cpu" in text and "Running stage 'train'" in text
    assert {"image/png", "image/svg+xml"} <= kinds  # the sample grid and the training curves, inline
    assert "fid" in text and "afd_real" in text  # the metrics table
    metrics = workdir / "metrics"
    train = json.loads((metrics / "train.json").read_text())
    assert train["epochs"] == EPOCHS and train["device"].startswith("cpu") and train["resumed_from_step"] == killed_at
    for name in ("sample.json", "detector.json"):
        assert json.loads((metrics / name).read_text())["device"] == "cpu"
    assert json.loads((metrics / "eval.json").read_text())["provenance"]["device"] == "cpu"
    assert (workdir / "plots" / "samples_grid.png").is_file()
    with tarfile.open(here / "submission.tgz") as tar:  # left where "elsewhere" downloads: the notebook's folder
        names = tar.getnames()
    assert len(names) == SAMPLE_COUNT and all(n.endswith(".jpg") for n in names)
    resumed = weights_sha256(generator)
    assert resumed == weights_sha256(uninterrupted_generator(workdir, tmp_path / "straight"))

    before = {p: p.stat().st_mtime_ns for p in (generator, checkpoint, metrics / "eval.json", here / "submission.tgz")}
    text, kinds, results_s = run_all(notebook(overrides), here, tmp_path / "results.ipynb")
    assert "baseline: finished earlier, showing its results" in text and "Running stage" not in text
    assert {"image/png", "image/svg+xml"} <= kinds and "fid" in text
    assert {p: p.stat().st_mtime_ns for p in before if p.name != "submission.tgz"} == {
        p: t for p, t in before.items() if p.name != "submission.tgz"}  # nothing the pipeline wrote was touched
    assert weights_sha256(generator) == resumed

    text, _, extended_s = run_all(notebook({**overrides, "EPOCHS": MORE_EPOCHS}), here, tmp_path / "extended.ipynb")
    assert f"baseline: extending from {EPOCHS} to {MORE_EPOCHS} epochs (step {total} of {MORE_EPOCHS * 9})" in text
    assert json.loads((metrics / "train.json").read_text())["epochs"] == MORE_EPOCHS
    with capsys.disabled():
        print(f"\nnotebook wall times on CPU: cut off after {first_s:.1f} s (at step {killed_at} of {total}), "
              f"resumed run {resumed_s:.1f} s, results-only run {results_s:.1f} s, extended run {extended_s:.1f} s")


def test_without_code_the_notebook_stops_in_one_line_saying_how_to_get_it_there(tmp_path, monkeypatch):
    kernel_env(monkeypatch, tmp_path)
    nb = notebook({"WORKDIR": str(tmp_path / "animegan")}, cells=4)
    with pytest.raises(CellExecutionError):
        run_all(nb, tmp_path, tmp_path / "executed.ipynb")
    error = next(o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error")
    assert error["traceback"] == [
        f"stopped: no project in {tmp_path / 'animegan'}: set REPO_URL to its git URL, or upload the project folder "
        "(or add a Kaggle dataset of it) and set REPO_DIR to it, e.g. /kaggle/input/<dataset>/animegan"
    ]


def test_colab_with_a_plain_folder_as_repo_dir_syncs_to_drive_and_stops_without_a_gpu(tmp_path, monkeypatch):
    """COLAB_RELEASE_TAG is set as Colab sets it; DRIVE_DIR is a plain folder standing in for the mounted Drive (so
    nothing is mounted); REPO_DIR is the project as a plain folder (an upload): copied, made a git + DVC repo."""
    needs_tools()
    source = project_folder(tmp_path / "upload")
    workdir, drive = tmp_path / "content" / "animegan", tmp_path / "drive" / "baseline"
    kernel_env(monkeypatch, workdir, COLAB_RELEASE_TAG="release-colab-20260101")
    nb = notebook({"REPO_DIR": str(source), "WORKDIR": str(workdir), "DRIVE_DIR": str(drive)}, cells=SETUP_CELLS)
    with pytest.raises(CellExecutionError):
        run_all(nb, tmp_path, tmp_path / "executed.ipynb")
    text = outputs_text(nb)
    assert f"copied the project from {source} to {workdir}" in text
    assert f"platform: colab; project: {workdir}" in text and f"checkpoints also go to {drive} (train.sync)" in text
    assert drive.is_dir() and (workdir / ".dvc").is_dir() and not (source / ".git").exists()
    assert subprocess.run(["git", "status", "--porcelain"], cwd=workdir, capture_output=True, text=True).stdout == ""
    assert ("error: device: auto found no GPU on Colab: on Colab pick Runtime > Change runtime type > T4 GPU (then "
            "restart), or set device: cpu to run on the CPU on purpose") in text  # fmt: skip
    assert "stopped: `" in text and "device --set device=auto` failed (exit code 2)" in text


def test_kaggle_takes_the_s3_token_from_its_secrets_and_stops_without_a_gpu(tmp_path, monkeypatch):
    """KAGGLE_KERNEL_RUN_TYPE is set as Kaggle sets it; kaggle_secrets is a stand-in module of the same name and call
    (on the kernel's PYTHONPATH), holding the S3 credentials; without them the notebook names where to add them."""
    needs_tools()
    origin = project_repo(tmp_path / "origin")
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    (fakes / "kaggle_secrets.py").write_text(
        "import json, pathlib\nclass UserSecretsClient:\n    def get_secret(self, label):\n"
        "        return json.loads((pathlib.Path(__file__).parent / 'secrets.json').read_text())[label]\n"
    )
    workdir = tmp_path / "working" / "animegan"
    kernel_env(monkeypatch, workdir, KAGGLE_KERNEL_RUN_TYPE="Interactive", PYTHONPATH=f"{workdir}{os.pathsep}{fakes}")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    overrides = {"REPO_URL": str(origin), "WORKDIR": str(workdir), "SYNC": "s3://runs/animegan"}

    (fakes / "secrets.json").write_text(json.dumps({"AWS_ACCESS_KEY_ID": "key"}))
    nb = notebook(overrides, cells=SETUP_CELLS)
    with pytest.raises(CellExecutionError):
        run_all(nb, tmp_path, tmp_path / "no-secret.ipynb")
    assert ("stopped: train.sync s3://runs/animegan needs AWS_SECRET_ACCESS_KEY: add it to Kaggle's Add-ons > "
            "Secrets (tick it for this notebook), or set the environment variable") in outputs_text(nb)  # fmt: skip

    (fakes / "secrets.json").write_text(json.dumps({"AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret"}))
    nb = notebook(overrides, cells=SETUP_CELLS)
    with pytest.raises(CellExecutionError):
        run_all(nb, tmp_path, tmp_path / "executed.ipynb")
    text = outputs_text(nb)
    assert "platform: kaggle" in text and "checkpoints also go to s3://runs/animegan (train.sync)" in text
    assert "from the platform's secrets: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY" in text
    assert "error: device: auto found no GPU on Kaggle: on Kaggle pick Settings > Accelerator > GPU T4 x2" in text
