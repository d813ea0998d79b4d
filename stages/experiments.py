"""The course's experiments as named presets, each a DVC experiment of the whole pipeline (metrics comparable).

Usage:
    animegan exp baseline            # sets the preset's params (-S train.loss=gan ... -S train.on_mismatch=restart),
                                     # dvc repro, dvc exp save -n baseline -f
    animegan exp baseline            # again: continues it (finished: results at once; cut off: resumes)
    animegan exp baseline --set train.epochs=3   # extends it to 3 epochs
    animegan exp wgan-gp --dry-run   # print the steps only
    animegan exp wgan-gp --seed 1    # experiment wgan-gp-seed1, trained with train.seed=1
    animegan exp --list              # every preset: images to train, estimated T4/CPU time, what it is for
    animegan exp r3gan-tiny --set data.image_size=32
    animegan exp wgan-gp --push origin   # then: dvc exp push origin wgan-gp (git ref + cached outputs)
    animegan exp wgan-gp --seed 1 --queue   # dvc exp run -n ... --queue; start workers with dvc queue start
    dvc exp show --only-changed      # then compare: dvc metrics diff / dvc plots diff

Every preset sets all the keys any preset changes, so the experiments can run in any order from the same
workspace (-S changes the workspace's params.yaml, which keeps the previous experiment's values).
on_mismatch=restart lets an experiment replace the previous one's checkpoint instead of refusing it; with equal
params the checkpoint is resumed instead (epochs10 after baseline trains 9 more epochs, exactly as 10 would).
Runs of one preset with several seeds compare as a group: `animegan compare a-seed1+a-seed2 b-seed1+b-seed2`.

Running an experiment that exists continues it, and one line says how: "finished earlier, showing its results"
(every stage up to date: nothing runs), "resuming from step N of M" (a run cut off: train resumes from its
checkpoint, then sample and evaluate run), "extending from E to E' epochs" (more epochs asked). It is
`dvc exp run -n NAME -S ...` done as set params + `dvc repro` + `dvc exp save -n NAME -f`, because `dvc exp run`
refuses an existing name and first checks out the locked checkpoint over a newer one (pipeline/runs/experiment.py).
When another experiment's outputs are in the workspace, `dvc exp apply NAME` brings NAME's back first. A run that
stops at its time budget (train.max_minutes: the train stage checkpoints and exits 75, so DVC records nothing)
says "NAME: stopped at the time budget after step N of M: Run all again to continue" and exits 75
(pipeline.core.errors.EXIT_STOPPED), saving nothing: running it again resumes it. A setting
params.yaml refuses, a folder that is not the project, or no git identity: one line and exit 2 before anything runs.

`--push REMOTE` pushes a finished run with `dvc exp push REMOTE NAME`: its git ref (params, dvc.lock, metrics and
curves) to the git remote, and its DVC-cached outputs (models, samples) to the default DVC remote. Without a
default DVC remote only the ref travels (`--no-cache`): compare works elsewhere, pulling the models does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.runs.preset_cost import RunCost

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
    "train.augment": [],
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
    # sized for one free GPU session: see `animegan exp --list` (estimates: pipeline/runs/preset_cost.py)
    "dcgan-hour": {"train.epochs": 20},
    "wgan-gp-session": {"train.epochs": 150, "train.n_critic": 2, "train.loss": "wgan-gp",
                        "train.dcgan.critic_norm": "instance"},  # fmt: skip
    # the paper's recipe and 20M-image schedules (300 epochs = 21.4M images) on the tiny widths, lazy R1/R2;
    # EMA half-life 20 kimg, StyleGAN2-ADA's batch x 10/32 at batch 64
    "r3gan-sessions": {**R3GAN_RECIPE, "train.r3gan.preset": "tiny", "train.epochs": 300,
                       "train.schedule_kimg": 20000.0, "train.ema_kimg": 20.0, "train.reg_every": 4},  # fmt: skip
}
PURPOSES: dict[str, str] = {
    "baseline": "the course's sample code: DCGAN, BCE loss, 1 epoch (simple level)",
    "epochs10": "the baseline trained 10 epochs (medium level)",
    "ncritic2": "2 critic steps per generator step, 50 epochs",
    "wgan": "WGAN with weight clipping and RMSprop, n_critic 2, 50 epochs",
    "wgan-gp": "WGAN-GP with an instance-norm critic, n_critic 2, 50 epochs (the course's strong level)",
    "r3gan": "R3GAN at the paper's FFHQ-64 size and recipe (rpgan + R1/R2, cosine schedules), for a GPU cluster: "
    "thousands of T4-hours",
    "r3gan-tiny": "R3GAN's recipe on the tiny preset with lazy R1/R2, for a CPU (best with data.image_size=32)",
    "dcgan-hour": "the course's DCGAN for 20 epochs (twice epochs10, the medium level): under an hour of T4",
    "wgan-gp-session": "WGAN-GP (strong level) for 150 epochs: fits one 12-hour Colab or Kaggle session",
    "r3gan-sessions": "R3GAN's recipe and 20M-image schedules on the tiny widths: 2-3 T4 sessions, with train.sync",
}
SESSION_HOURS = 10.0  # training time a free 12-hour session leaves after set-up, sampling, evaluation and a margin


def preset_cost(name: str) -> RunCost:
    """The preset's images to train and estimated hours (pipeline/runs/preset_cost.py: estimates until a GPU run
    replaces them), from the settings it trains with."""
    from pipeline.runs.preset_cost import TrainShape, estimate

    s = preset_settings(name)
    return estimate(TrainShape(model=s["train.model"], r3gan_preset=s["train.r3gan.preset"], loss=s["train.loss"],
                               gamma=s["train.gamma"], epochs=s["train.epochs"], batch_size=s["train.batch_size"],
                               n_critic=s["train.n_critic"], reg_every=s["train.reg_every"]))  # fmt: skip


def preset_line(name: str) -> str:
    """One line of `animegan exp --list`: name, kimg, estimated T4 and CPU time, what it is for."""
    from pipeline.runs.preset_cost import hours_text

    cost = preset_cost(name)
    return (f"{name:<16} {cost.kimg:>8,.0f} kimg  T4 {hours_text(*cost.t4_hours):<16} "
            f"CPU {hours_text(cost.cpu_hours):<11} {PURPOSES[name]}")  # fmt: skip


LIST_HEADER = (f"{'preset':<16} {'images to train':>13}  {'T4 fp32 (est.)':<19} {'CPU (est.)':<15} what it is for"
               "   [estimates from FLOP counts until a GPU run replaces them: docs/training.md]")  # fmt: skip


def preset_settings(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise KeyError(name)
    return {**VARIANT_KEYS, **PRESETS[name], "train.on_mismatch": "restart"}


def dvc_command(
    name: str, extra_sets: list[str] | tuple[str, ...] = (), seed: int | None = None, queue: bool = False
) -> list[str]:
    """The `dvc exp run` argv for a preset (what --queue runs; `animegan exp` runs its steps, see above);
    extra_sets (key=value) come last, so they win. A seed names the experiment NAME-seedS and trains with
    train.seed=S (compare such runs as a group: a-seed1+a-seed2). queue: only add it to DVC's queue."""
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
    """Run or continue the preset in this workspace (or with dry_run only print the steps), then with push the
    `dvc exp push` of the finished run; the dvc beside this Python is preferred."""
    import sys

    from pipeline.core.errors import UserError

    if name not in PRESETS:
        raise UserError(f"unknown experiment {name!r}; presets: {', '.join(PRESETS)}")
    if queue and push is not None:
        raise UserError("--push needs a finished run: after the queue, push with `dvc exp push REMOTE NAME ...`")
    cmd = dvc_command(name, extra_sets, seed, queue)
    exp_name, items = cmd[4], cmd[6::2]
    root = Path.cwd()
    if not dry_run:
        _check_workspace(root, items)
    if queue:
        if experiment_exists(root, exp_name):
            again = f"animegan exp {name}" + ("" if seed is None else f" --seed {seed}")
            raise UserError(f"experiment {exp_name} exists: `{again}` (without --queue) continues it here")
        return _run_dvc(cmd, dry_run)
    code = _continue(root, exp_name, items, dry_run)
    if push is None or code != 0:
        return code
    dvc_remote = _default_dvc_remote()
    if dvc_remote is None:
        print("note: no default DVC remote (`dvc remote add -d NAME URL`): pushing the run's git ref only; its "
              "models and samples stay here", file=sys.stderr, flush=True)  # fmt: skip
    return _run_dvc(push_command(exp_name, push, dvc_remote), dry_run)


def _check_workspace(root: Path, items: list[str]) -> None:
    """One line before anything runs: not a DVC project, no git identity, a setting params.yaml refuses."""
    from pipeline.core.config import load_params
    from pipeline.core.errors import UserError
    from pipeline.runs.git_identity import missing_identity

    if missing := missing_identity(root):
        raise UserError(f"dvc exp run commits each experiment and git has no {' or '.join(missing)} here: set them "
                        "with `git config --global user.name NAME` and `git config --global user.email EMAIL`")
    if not (root / "dvc.yaml").is_file() or not (root / ".dvc").is_dir():
        raise UserError(f"{root} is not the project's folder (no dvc.yaml and .dvc/ here): cd into the clone first")
    load_params(root / "params.yaml", items)  # an unknown key or a bad value: one line, params.yaml untouched


def _continue(root: Path, exp_name: str, items: list[str], dry_run: bool) -> int:
    """The experiment's steps: get its outputs back if another experiment is here, set its params, say what
    happens, `dvc repro`, save it under its name (see pipeline.runs.experiment)."""
    import shlex
    import sys

    from pipeline.core.errors import UserError
    from pipeline.runs.experiment import mark_workspace, set_params, workspace_experiment

    if experiment_exists(root, exp_name) and workspace_experiment(root) != exp_name:
        if _run_dvc(["dvc", "exp", "apply", exp_name], dry_run):  # another experiment's outputs are here
            raise UserError(f"`dvc exp apply {exp_name}` failed: see its output above")
    print(f"set params.yaml as dvc exp run -S does: {shlex.join(a for i in items for a in ('-S', i))}",
          file=sys.stderr, flush=True)  # fmt: skip
    if dry_run:
        _run_dvc(["dvc", "repro"], dry_run)
        return _run_dvc(["dvc", "exp", "save", "-n", exp_name, "-f"], dry_run)
    set_params(root, items)
    mark_workspace(root, exp_name)
    print(_state_line(root, exp_name), flush=True)
    code, stopped = _repro()
    if stopped is not None:  # train stopped at train.max_minutes, its checkpoint written: nothing to save yet
        from pipeline.core.errors import EXIT_STOPPED
        from pipeline.runs.continuation import budget_line

        print(budget_line(exp_name, stopped), flush=True)
        return EXIT_STOPPED
    if code:
        print(f"error: `dvc repro` stopped (exit {code}): the stage's message above says why; `animegan exp` "
              f"again continues {exp_name} from where it stopped", file=sys.stderr, flush=True)  # fmt: skip
        return code
    from pipeline.runs.experiment import uncached_outputs

    keep = [arg for path in uncached_outputs(root) for arg in ("--include-untracked", path)]
    if _run_dvc(["dvc", "exp", "save", "-n", exp_name, "-f", *keep], dry_run):
        raise UserError(f"`dvc exp save -n {exp_name}` failed: see its output above; the results are in the workspace")
    return 0


def _repro() -> tuple[int, dict[str, Any] | None]:
    """`dvc repro`: its exit code, and the train stage's summary when it stopped at its time budget (else None)."""
    import json
    import os
    import tempfile

    from pipeline.train.budget import STOP_REPORT_ENV

    with tempfile.TemporaryDirectory(prefix="animegan-exp-") as folder:
        report = Path(folder) / "stopped.json"
        code = _run_dvc(["dvc", "repro"], False, {**os.environ, STOP_REPORT_ENV: str(report)})
        stopped = json.loads(report.read_text(encoding="utf-8")) if code and report.is_file() else None
    return code, stopped


def experiment_exists(root: Path, exp_name: str) -> bool:
    from pipeline.runs.experiment import experiment_exists as exists

    return exists(root, exp_name)


def _state_line(root: Path, exp_name: str) -> str:
    """What the rerun does (finished / resuming / extending / new), from the checkpoint and `dvc status`."""
    import logging

    from pipeline.core.config import load_params, to_dict
    from pipeline.core.outputs import CHECKPOINT_FILE
    from pipeline.runs.continuation import continuation_line
    from pipeline.runs.experiment import up_to_date
    from pipeline.train.checkpoint import load_checkpoint

    logging.getLogger("dvc").propagate = False  # DVC in this process prints its own warnings: not twice
    params = load_params(root / "params.yaml")
    state = load_checkpoint(root / params.paths.models / CHECKPOINT_FILE)
    return continuation_line(exp_name, state, to_dict(params), up_to_date(root))


def dvc_executable() -> str:
    """The dvc beside this Python (the venv's), else the one on PATH."""
    import shutil
    import sys
    from pathlib import Path

    beside = Path(sys.executable).with_name("dvc")
    return str(beside) if beside.exists() else (shutil.which("dvc") or "dvc")


def _run_dvc(cmd: list[str], dry_run: bool, env: dict[str, str] | None = None) -> int:
    import shlex
    import subprocess
    import sys

    print(shlex.join(cmd), file=sys.stderr, flush=True)
    if dry_run:
        return 0
    return subprocess.run([dvc_executable(), *cmd[1:]], env=env).returncode


def _default_dvc_remote() -> str | None:
    """The name `dvc remote default` prints, or None when none is set."""
    import subprocess

    done = subprocess.run([dvc_executable(), "remote", "default"], capture_output=True, text=True)
    name = done.stdout.strip()
    return name if done.returncode == 0 and name else None
