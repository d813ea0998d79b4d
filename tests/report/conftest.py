"""A real git + DVC repository holding a baseline commit and three DVC experiments with different eval.json.

The experiments are made by `dvc exp run -S ...` on a one-stage pipeline whose command writes eval.json in the
contract's layout from params.yaml, so compare and report read exactly what DVC stored (git refs under
refs/exps, DVC-cached outputs), not hand-made stand-ins.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent

WRITE_EVAL = textwrap.dedent(
    '''
    """Stand-in for the evaluate stage: eval.json in the contract's layout, train curves and a grid."""
    import json, struct, zlib, yaml
    from pathlib import Path

    p = yaml.safe_load(open("params.yaml"))
    def spread(draws):
        m = sum(draws) / len(draws)
        s = (sum((d - m) ** 2 for d in draws) / (len(draws) - 1)) ** 0.5
        return {"mean": m, "std": s, "draws": draws}
    wiggle = [0.0, 0.8, -0.6, 0.3, -0.5]
    ev = {
        "fid": spread([p["fid"] + w for w in wiggle]),
        "kid": spread([p["fid"] / 10000 + w / 10000 for w in wiggle]),
        "afd": spread([p["afd"] + w / 100 for w in wiggle]),
        "afd_real": 0.9,
        "afd_rel": p["afd"] / 0.9,
        "provenance": {
            "dataset_sha256": p["dataset"] * 64, "fid_backbone": "pytorch-fid-inception",
            "weights_sha256": "b" * 64, "detector": {"kind": "mtcnn", "min_face_prob": 0.9},
            "image_count": 1000, "repeats": 5, "reference_count": 5000, "jpeg_quality": 75,
            "packages": {"torch": "2.14.1"}, "device": "cpu",
        },
    }
    Path("metrics").mkdir(exist_ok=True)
    Path("metrics/eval.json").write_text(json.dumps(ev, indent=2))
    Path("metrics/train.json").write_text(json.dumps({"steps": 20, "images_per_s": 31.5, "device": "cpu"}))
    curves = Path("plots/train/plots/metrics/train")
    curves.mkdir(parents=True, exist_ok=True)
    for name, f in (("loss_d", lambda i: 1.4 - 0.02 * i), ("loss_g", lambda i: 0.7 + 0.03 * i),
                    ("images_per_s", lambda i: 30 + (i % 3))):
        rows = ["timestamp\\tstep\\t" + name] + [f"{1000 + i}\\t{i}\\t{f(i)}" for i in range(20)]
        (curves / f"{name}.tsv").write_text("\\n".join(rows) + "\\n")
    def png(w, h, rgb):
        raw = b"".join(b"\\x00" + bytes(rgb) * w for _ in range(h))
        def chunk(t, d):
            return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
        ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
        body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
        return b"\\x89PNG\\r\\n\\x1a\\n" + body
    Path("plots/train/grid_epoch_1.png").write_bytes(png(16, 16, (200, 30, 30)))
    Path("plots/train/grid_epoch_2.png").write_bytes(png(24, 24, (30, 30, 200)))
    '''
)

DVC_YAML = textwrap.dedent(
    f"""
    stages:
      evaluate:
        cmd: {sys.executable} write_eval.py
        deps: [write_eval.py]
        params: [fid, afd, dataset]
        outs:
          - plots/train
        metrics:
          - metrics/eval.json:
              cache: false
          - metrics/train.json:
              cache: false
    """
)


def sh(cwd: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    done = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def shell():
    """sh(cwd, *args): run a command with the venv's dvc on PATH; fail the test on a non-zero exit."""
    return sh


@pytest.fixture(scope="session")
def exp_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Baseline commit (FID 100, AFD 0.5) and experiments: `same` (no change), `better` (FID 80, AFD 0.7),
    `otherdata` (FID 100 on another dataset hash)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path_factory.mktemp("exp_repo")
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "dvc", "init", "-q")
    (repo / "write_eval.py").write_text(WRITE_EVAL)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    (repo / "params.yaml").write_text("fid: 100.0\nafd: 0.5\ndataset: a\n")
    sh(repo, "dvc", "repro", "-q")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "baseline")
    sh(repo, "dvc", "exp", "run", "-q", "-n", "same", "-S", "fid=100.0", "-S", "afd=0.5", "-S", "dataset=a")
    sh(repo, "dvc", "exp", "run", "-q", "-n", "better", "-S", "fid=80.0", "-S", "afd=0.7")
    sh(repo, "dvc", "exp", "run", "-q", "-n", "otherdata", "-S", "fid=100.0", "-S", "afd=0.5", "-S", "dataset=c")
    # Leave the workspace at the baseline's numbers (the last exp run changed it).
    sh(repo, "dvc", "exp", "apply", "same")
    return repo
