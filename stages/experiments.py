"""The course's experiments as named presets, each one `dvc exp run` (the whole pipeline, metrics comparable).

Usage:
    animegan exp baseline            # runs: dvc exp run -n baseline -S train.loss=gan ... -S train.on_mismatch=restart
    animegan exp wgan-gp --dry-run   # print the command only
    animegan exp wgan-gp --seed 1    # experiment wgan-gp-seed1, trained with train.seed=1
    animegan exp --list              # every preset and what it is for
    animegan exp r3gan-tiny --set data.image_size=32
    animegan exp wgan-gp --push origin   # then: dvc exp push origin wgan-gp (git ref + cached outputs)
    animegan exp wgan-gp --seed 1 --queue   # dvc exp run --queue ...; start workers with dvc queue start
    dvc exp show --only-changed      # then compare: dvc metrics diff / dvc plots diff

Every preset sets all the keys any preset changes, so the experiments can run in any order from the same
workspace (DVC applies -S to the workspace's params.yaml, which keeps the previous experiment's values).
on_mismatch=restart lets an experiment replace the previous one's checkpoint instead of refusing it; with equal
params the checkpoint is resumed instead (epochs10 after baseline trains 9 more epochs, exactly as 10 would).
Runs of one preset with several seeds compare as a group: `animegan compare a-seed1+a-seed2 b-seed1+b-seed2`.

`--push REMOTE` pushes a finished run with `dvc exp push REMOTE NAME`: its git ref (params, dvc.lock, metrics and
curves) to the git remote, and its DVC-cached outputs (models, samples) to the default DVC remote. Without a
default DVC remote only the ref travels (`--no-cache`): compare works elsewhere, pulling the models does not.
"""

from __future__ import annotations

from typing import Any

VARIANT_KEYS: dict[str, Any] = {  # the course's sample settings (params.yaml's defaults); presets override some
    "train.loss": "gan",
    "train.optimizer": "adam",
    "train.dcgan.critic_norm": "batch",
    "train.n_critic": 1,
    "train.epochs": 1,
    "train.seed": 2022,  # same_seeds(2022); `--seed S` replaces it, and the next preset puts it back
    "train.model": "dcgan",
    "train.z_dim": 100,
    "train.batch_size": 64,
    "train.lr_g": 1.0e-4,
    "train.lr_d": 1.0e-4,
    "train.betas": [0.5, 0.999],
    "train.lr_g_end": None,
    "train.lr_d_end": None,
    "train.beta2_end": None,
    "train.schedule_kimg": 20000.0,
    "train.gamma": 0.0,
    "train.gamma_end": None,
    "train.reg_every": 1,
    "train.ema_kimg": 0.0,
    "train.flip": False,
    "train.r3gan.preset": "paper",
    "train.snapshot_kimg": 0.0,  # snapshots scored while training: off, as params.yaml; the GPU presets turn them on
}
R3GAN_RECIPE: dict[str, Any] = {  # the paper's FFHQ-64 training recipe (brownvc/R3GAN train.py)
    "train.model": "r3gan",
    "train.loss": "rpgan",
    "train.z_dim": 64,
    "train.lr_g": 2.0e-4,
    "train.lr_d": 2.0e-4,
    "train.lr_g_end": 5.0e-5,
    "train.lr_d_end": 5.0e-5,
    "train.betas": [0.0, 0.9],
    "train.beta2_end": 0.99,
    "train.gamma": 2.0,
    "train.gamma_end": 0.2,
    "train.flip": True,
}
PRESETS: dict[str, dict[str, Any]] = {
    "baseline": {},  # the course's sample code: 1 epoch
    # snapshots (train.snapshot_kimg) in the presets that train for hours on a GPU: 7 to 107 of them, about 1.8 s
    # each on a T4, about 3% of a 64 px DCGAN's training time every 100 kimg (estimated from FLOPs:
    # bench/results/snapshot_cost.json); the best is kept in models/best.pt and sampled
    "epochs10": {"train.epochs": 10, "train.snapshot_kimg": 100.0},
    "ncritic2": {"train.epochs": 50, "train.n_critic": 2, "train.snapshot_kimg": 100.0},
    "wgan": {"train.epochs": 50, "train.n_critic": 2, "train.loss": "wgan", "train.optimizer": "rmsprop",
             "train.snapshot_kimg": 100.0},  # fmt: skip
    "wgan-gp": {"train.epochs": 50, "train.n_critic": 2, "train.loss": "wgan-gp",
                "train.dcgan.critic_norm": "instance", "train.snapshot_kimg": 100.0},  # fmt: skip
    # batch 256 as the paper; 300 epochs of the 71,314 faces (21.4M images) cover the 20M-image schedules;
    # a snapshot every 200 kimg, StyleGAN2-ADA's default interval
    "r3gan": {**R3GAN_RECIPE, "train.r3gan.preset": "paper", "train.batch_size": 256, "train.epochs": 300,
              "train.schedule_kimg": 20000.0, "train.ema_kimg": 500.0, "train.snapshot_kimg": 200.0},  # fmt: skip
    # 10 epochs (713k images) with the schedules over them; R1/R2 every 4th critic step (lazy) to save CPU
    "r3gan-tiny": {**R3GAN_RECIPE, "train.r3gan.preset": "tiny", "train.epochs": 10, "train.schedule_kimg": 713.0,
                   "train.ema_kimg": 20.0, "train.reg_every": 4, "train.gamma": 1.0,
                   "train.gamma_end": 0.1},  # fmt: skip
}
PURPOSES: dict[str, str] = {
    "baseline": "the course's sample code: DCGAN, BCE loss, 1 epoch (simple level)",
    "epochs10": "the baseline trained 10 epochs (medium level)",
    "ncritic2": "2 critic steps per generator step, 50 epochs",
    "wgan": "WGAN with weight clipping and RMSprop, n_critic 2, 50 epochs",
    "wgan-gp": "WGAN-GP with an instance-norm critic, n_critic 2, 50 epochs (the course's strong level)",
    "r3gan": "R3GAN at the paper's FFHQ-64 size and recipe (rpgan + R1/R2, cosine schedules), for a GPU",
    "r3gan-tiny": "R3GAN's recipe on the tiny preset with lazy R1/R2, for a CPU (best with data.image_size=32)",
}


def preset_settings(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise KeyError(name)
    return {**VARIANT_KEYS, **PRESETS[name], "train.on_mismatch": "restart"}


def dvc_command(
    name: str, extra_sets: list[str] | tuple[str, ...] = (), seed: int | None = None, queue: bool = False
) -> list[str]:
    """The `dvc exp run` argv for a preset; extra_sets (key=value) come last, so they win. A seed names the
    experiment NAME-seedS and trains with train.seed=S (compare such runs as a group: a-seed1+a-seed2). queue:
    only add it to DVC's queue (`dvc queue start` runs it)."""
    settings = preset_settings(name) | ({} if seed is None else {"train.seed": seed})
    cmd = ["dvc", "exp", "run", "-n", name if seed is None else f"{name}-seed{seed}"]
    for key, value in settings.items():
        cmd += ["-S", f"{key}={yaml_text(value)}"]
    for item in extra_sets:
        cmd += ["-S", item]
    return [*cmd, "--queue"] if queue else cmd


def push_command(name: str, git_remote: str, dvc_remote: str | None) -> list[str]:
    """`dvc exp push` for one finished run; without a default DVC remote only its git ref is pushed."""
    cmd = ["dvc", "exp", "push", git_remote, name]
    return cmd if dvc_remote else [*cmd, "--no-cache"]


def yaml_text(value: Any) -> str:
    """The value as YAML that both DVC (YAML 1.2) and PyYAML (1.1: 5e-05 is text, 5.0e-05 a float) read back."""
    if value is None:
        return "null"
    text = str(value)
    if isinstance(value, float) and "e" in text and "." not in text:
        text = text.replace("e", ".0e")
    return text


def run_experiment(
    name: str,
    extra_sets: list[str] | tuple[str, ...] = (),
    dry_run: bool = False,
    seed: int | None = None,
    push: str | None = None,
    queue: bool = False,
) -> int:
    """Run (or with dry_run only print) the preset's dvc command, then with push the `dvc exp push` of the
    finished run; the dvc beside this Python is preferred."""
    import sys
    from pathlib import Path

    from pipeline.core.errors import UserError
    from pipeline.runs.git_identity import missing_identity

    if name not in PRESETS:
        raise UserError(f"unknown experiment {name!r}; presets: {', '.join(PRESETS)}")
    if queue and push is not None:
        raise UserError("--push needs a finished run: after the queue, push with `dvc exp push REMOTE NAME ...`")
    cmd = dvc_command(name, extra_sets, seed, queue)
    if not dry_run and (missing := missing_identity(Path.cwd())):
        raise UserError(f"dvc exp run commits each experiment and git has no {' or '.join(missing)} here: set them "
                        "with `git config --global user.name NAME` and `git config --global user.email EMAIL`")
    code = _run_dvc(cmd, dry_run)
    if push is None or code != 0:
        return code
    dvc_remote = _default_dvc_remote()
    if dvc_remote is None:
        print("note: no default DVC remote (`dvc remote add -d NAME URL`): pushing the run's git ref only; its "
              "models and samples stay here", file=sys.stderr, flush=True)  # fmt: skip
    return _run_dvc(push_command(cmd[4], push, dvc_remote), dry_run)


def dvc_executable() -> str:
    """The dvc beside this Python (the venv's), else the one on PATH."""
    import shutil
    import sys
    from pathlib import Path

    beside = Path(sys.executable).with_name("dvc")
    return str(beside) if beside.exists() else (shutil.which("dvc") or "dvc")


def _run_dvc(cmd: list[str], dry_run: bool) -> int:
    import shlex
    import subprocess
    import sys

    print(shlex.join(cmd), file=sys.stderr, flush=True)
    if dry_run:
        return 0
    return subprocess.run([dvc_executable(), *cmd[1:]]).returncode


def _default_dvc_remote() -> str | None:
    """The name `dvc remote default` prints, or None when none is set."""
    import subprocess

    done = subprocess.run([dvc_executable(), "remote", "default"], capture_output=True, text=True)
    name = done.stdout.strip()
    return name if done.returncode == 0 and name else None
