"""A named DVC experiment continued in this workspace: `dvc exp run -n NAME -S ...` in three steps that resume.

Usage:
    from pipeline.runs.experiment import (experiment_exists, workspace_experiment, mark_workspace, set_params,
                                          up_to_date, uncached_outputs)
    experiment_exists(root, "baseline")       # a ref refs/exps/<HEAD>/baseline: it ran to the end here before
    workspace_experiment(root)                # the experiment this workspace's outputs belong to (or None)
    set_params(root, ["train.epochs=3"])      # params.yaml changed exactly as `dvc exp run -S` changes it
    mark_workspace(root, "baseline")
    up_to_date(root)                          # `dvc status` finds nothing to run
    uncached_outputs(root)                    # metrics/*.json, curves: the git-tracked outputs a save must include

Why not `dvc exp run -n NAME` itself: it refuses a name that exists ("Experiment conflicts with existing
experiment"; its -f also reruns every stage), and before running it checks out every output dvc.lock records,
persistent ones too, so a checkpoint newer than the lock's (a run cut off after a finished one) is replaced by the
older one. `animegan exp` instead sets the params as -S does, runs `dvc repro` (which keeps persistent outputs:
train resumes from its checkpoint), then `dvc exp save -n NAME -f` (what `dvc exp run` does after its repro).
The workspace's experiment is noted in DVC's own untracked temp folder, so a workspace that last ran another
experiment first gets NAME's outputs back with `dvc exp apply NAME` instead of retraining it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from contextlib import chdir
from pathlib import Path

from pipeline.core.atomic import atomic_write_text
from pipeline.core.errors import UserError, one_line

MARKER = Path(".dvc") / "tmp" / "animegan-experiment"  # .dvc/tmp is git-ignored by DVC itself


def _git(root: Path, *args: str) -> str | None:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def experiment_ref(root: Path, name: str) -> str | None:
    """The git ref DVC keeps experiment `name` of this commit under, if it exists."""
    head = _git(root, "rev-parse", "--verify", "-q", "HEAD")
    if not head:
        return None
    ref = f"refs/exps/{head[:2]}/{head[2:]}/{name}"
    return ref if _git(root, "rev-parse", "--verify", "-q", ref) else None


def experiment_exists(root: Path, name: str) -> bool:
    return experiment_ref(root, name) is not None


def workspace_experiment(root: Path) -> str | None:
    path = Path(root) / MARKER
    if not path.is_file():
        return None
    return path.read_text(encoding="utf-8").strip() or None


def mark_workspace(root: Path, name: str) -> None:
    path = Path(root) / MARKER
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, name + "\n")


def set_params(root: Path, items: Sequence[str]) -> None:
    """Apply key=value items to params.yaml with DVC's own -S code (same YAML, comments kept)."""
    from dvc.utils.hydra import apply_overrides

    try:
        apply_overrides(Path(root) / "params.yaml", list(items))
    except Exception as e:  # hydra's parse or composition errors: the item's own fault
        raise UserError(f"cannot set params.yaml ({one_line(e, 200)})") from None


def up_to_date(root: Path) -> bool:
    """Whether `dvc status` finds every stage up to date (nothing would run)."""
    from dvc.repo import Repo

    with chdir(root), Repo(".") as repo:
        return not repo.status()


def uncached_outputs(root: Path) -> list[str]:
    """The existing outputs kept in git rather than DVC's cache (cache: false metrics, curves, plots), relative to
    root: `dvc exp run` commits them with the experiment, so the save does too (compare and report read them)."""
    from dvc.repo import Repo

    with chdir(root), Repo(".") as repo:
        paths = {
            os.path.relpath(out.fs_path, repo.root_dir)
            for stage in repo.index.stages
            for out in stage.outs
            if out.is_in_repo and not out.use_scm_ignore
        }
    return sorted(p for p in paths if (Path(root) / p).exists())
