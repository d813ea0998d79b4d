"""The course's experiments as named presets, each one `dvc exp run` (the whole pipeline, metrics comparable).

Usage:
    animegan exp baseline            # runs: dvc exp run -n baseline -S train.loss=gan ... -S train.on_mismatch=restart
    animegan exp wgan-gp --dry-run   # print the command only
    animegan exp wgan-gp --seed 1    # experiment wgan-gp-seed1, trained with train.seed=1
    animegan exp --list
    dvc exp show --only-changed      # then compare: dvc metrics diff / dvc plots diff

Every preset sets all the keys any preset changes, so the experiments can run in any order from the same
workspace (DVC applies -S to the workspace's params.yaml, which keeps the previous experiment's values).
on_mismatch=restart lets an experiment replace the previous one's checkpoint instead of refusing it; with equal
params the checkpoint is resumed instead (epochs10 after baseline trains 9 more epochs, exactly as 10 would).
Runs of one preset with several seeds compare as a group: `animegan compare a-seed1+a-seed2 b-seed1+b-seed2`.
"""

from __future__ import annotations

from typing import Any

VARIANT_KEYS: dict[str, Any] = {  # the course's sample settings; presets override some
    "train.loss": "gan",
    "train.optimizer": "adam",
    "train.critic_norm": "batch",
    "train.n_critic": 1,
    "train.epochs": 1,
    "train.seed": 2022,  # same_seeds(2022); `--seed S` replaces it, and the next preset puts it back
}
PRESETS: dict[str, dict[str, Any]] = {
    "baseline": {},  # the course's sample code: 1 epoch
    "epochs10": {"train.epochs": 10},
    "ncritic2": {"train.epochs": 50, "train.n_critic": 2},
    "wgan": {"train.epochs": 50, "train.n_critic": 2, "train.loss": "wgan", "train.optimizer": "rmsprop"},
    "wgan-gp": {"train.epochs": 50, "train.n_critic": 2, "train.loss": "wgan-gp", "train.critic_norm": "instance"},
}


def preset_settings(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise KeyError(name)
    return {**VARIANT_KEYS, **PRESETS[name], "train.on_mismatch": "restart"}


def dvc_command(name: str, extra_sets: list[str] | tuple[str, ...] = (), seed: int | None = None) -> list[str]:
    """The `dvc exp run` argv for a preset; extra_sets (key=value) come last, so they win. A seed names the
    experiment NAME-seedS and trains with train.seed=S (compare such runs as a group: a-seed1+a-seed2)."""
    settings = preset_settings(name) | ({} if seed is None else {"train.seed": seed})
    cmd = ["dvc", "exp", "run", "-n", name if seed is None else f"{name}-seed{seed}"]
    for key, value in settings.items():
        cmd += ["-S", f"{key}={value}"]
    for item in extra_sets:
        cmd += ["-S", item]
    return cmd


def run_experiment(
    name: str, extra_sets: list[str] | tuple[str, ...] = (), dry_run: bool = False, seed: int | None = None
) -> int:
    """Run (or with dry_run only return) the preset's dvc command; the dvc beside this Python is preferred."""
    import shlex
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from pipeline.errors import UserError

    if name not in PRESETS:
        raise UserError(f"unknown experiment {name!r}; presets: {', '.join(PRESETS)}")
    cmd = dvc_command(name, extra_sets, seed)
    beside = Path(sys.executable).with_name("dvc")
    cmd[0] = str(beside) if beside.exists() else (shutil.which("dvc") or "dvc")
    print(shlex.join(["dvc", *cmd[1:]]), file=sys.stderr, flush=True)
    if dry_run:
        return 0
    return subprocess.run(cmd).returncode
