"""The offline demo: every stage of the real DVC pipeline, run by `dvc repro`, on generated cartoon faces.

Usage:
    make demo                                  # creates .venv if needed, then runs this
    python -m stages.demo [--workspace demo]   # the workspace defaults to demo/ at the repo root (gitignored)
    python -m stages.demo --set train.epochs=5 # a shorter demo (repeatable; applied after demo_params.yaml)

In its own workspace (a git + DVC repository, never the project's data/, metrics/ or params.yaml) the demo
  1. copies the project's dvc.yaml, pipeline/ and stages/ (only files whose bytes changed, so DVC sees the same
     code deps on a second run) and writes params.yaml = the project's params.yaml + stages/demo_params.yaml,
     with data.url pointing at
  2. a zip of cartoon faces (pipeline.data.cartoon) in the course's layout, served to the download stage as file://,
  3. commits that, runs `dvc repro` (stage commands are the venv's `animegan`, importing the copied code through
     PYTHONPATH), commits the results, writes plots/report.html + report.md and prints the metrics table.
A second run finds everything in DVC's cache and the lock file and reruns nothing. Try an experiment after it:
    source .venv/bin/activate && cd demo
    dvc exp run -n hinge -S train.loss=hinge && animegan compare HEAD hinge && animegan report HEAD hinge
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from pipeline.core.config import Params, apply_override, validate
from pipeline.core.errors import UserError, one_line
from pipeline.core.outputs import EVAL_METRICS_FILE
from pipeline.runs.git_identity import missing_identity

REPO = Path(__file__).resolve().parents[1]
DEMO_PARAMS = Path(__file__).with_name("demo_params.yaml")
CODE_DIRS = ("pipeline", "stages")
CODE_FILES = ("dvc.yaml", ".dvcignore")  # the project's .dvcignore: bytecode caches are not code (dvc init keeps it)
DEMO_IDENTITY = {"user.name": "animegan demo", "user.email": "demo@localhost"}
GIT_ID = [*(f for key, value in DEMO_IDENTITY.items() for f in ("-c", f"{key}={value}")), "-c", "commit.gpgsign=false"]
PARAMS_HEADER = "# Written by `python -m stages.demo`: the project's params.yaml + stages/demo_params.yaml.\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", type=Path, default=REPO / "demo", help="the demo's own git+DVC repository")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one of the demo's params (section.key=value), after demo_params.yaml; repeatable",
    )  # fmt: skip
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        params = run_demo(args.workspace.resolve(), args.overrides)
        print_summary(args.workspace.resolve(), params, time.monotonic() - started)
    except UserError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as e:
        print(f"error: `{' '.join(map(str, e.cmd))}` failed with exit code {e.returncode}", file=sys.stderr)
        return 1
    return 0


def run_demo(ws: Path, overrides: list[str] | tuple[str, ...] = ()) -> Params:
    """Prepare the workspace, run the real pipeline through `dvc repro`, commit, write the report."""
    settings = yaml.safe_load(DEMO_PARAMS.read_text(encoding="utf-8"))
    ws.mkdir(parents=True, exist_ok=True)
    sync_code(REPO, ws)
    faces_zip = ensure_faces_zip(ws, **settings["faces"])
    params = write_params(ws, settings["params"], faces_zip, overrides)
    env = demo_env(ws)
    ensure_repo(ws, env)
    code = (".gitignore", ".dvc", *CODE_FILES, "params.yaml", *CODE_DIRS)
    commit_all(ws, env, "demo: code and params", only=code)
    untrack_cached_grids(ws, env, params)
    print(f"demo: running `dvc repro` in {ws}", flush=True)
    subprocess.run(["dvc", "repro"], cwd=ws, env=env, check=True)
    commit_all(ws, env, "demo: pipeline results")
    write_demo_report(ws, params)
    return params


def sync_code(src: Path, ws: Path) -> None:
    """Mirror CODE_FILES, pipeline/*.py and stages/*.py(+yaml) into ws, touching only files whose bytes differ."""
    wanted: dict[Path, Path] = {ws / name: src / name for name in CODE_FILES}
    for folder in CODE_DIRS:
        for file in (src / folder).rglob("*"):
            if file.is_file() and "__pycache__" not in file.parts and file.suffix in (".py", ".yaml"):
                wanted[ws / file.relative_to(src)] = file
    for target, origin in sorted(wanted.items()):
        data = origin.read_bytes()
        if not target.is_file() or target.read_bytes() != data:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    for folder in CODE_DIRS:
        for stale in (ws / folder).rglob("*"):
            if stale.is_file() and stale not in wanted and "__pycache__" not in stale.parts:
                stale.unlink()


def ensure_faces_zip(ws: Path, count: int, size: int, seed: int) -> Path:
    """The zip's name holds its settings, so new settings make a new file (and a new data.url) for DVC."""
    from pipeline.data.cartoon import write_faces_zip

    path = ws / "inputs" / f"faces-{count}x{size}px-seed{seed}.zip"
    if not path.is_file():
        print(f"demo: writing {count} cartoon faces to {path}", flush=True)
        write_faces_zip(path, count=count, size=size, seed=seed)
    return path


def write_params(
    ws: Path, overrides: dict[str, Any], faces_zip: Path, settings: list[str] | tuple[str, ...] = ()
) -> Params:
    """The project's params.yaml with the demo's overrides, then `--set` settings; validated, so a renamed param
    fails here, clearly."""
    merged = merge(yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8")), overrides)
    for item in settings:
        apply_override(merged, item)
    merged["data"]["url"] = faces_zip.as_uri()
    params = validate(merged, source=f"params.yaml + {DEMO_PARAMS.name}")
    text = PARAMS_HEADER + yaml.safe_dump(merged, sort_keys=False)
    target = ws / "params.yaml"
    if not target.is_file() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")
    return params


def merge(base: dict[str, Any], overrides: dict[str, Any], where: str = "") -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if key not in base:
            raise UserError(f"{DEMO_PARAMS.name}: {where}{key} is not a key of params.yaml")
        out[key] = merge(base[key], value, f"{where}{key}.") if isinstance(value, dict) else value
    return out


def demo_env(ws: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)  # dvc and animegan live beside this python
    return os.environ | {
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ws),  # the stage commands import the workspace's copy, the code DVC hashed
        "DVC_NO_ANALYTICS": "1",
    }


def ensure_repo(ws: Path, env: dict[str, str]) -> None:
    if shutil.which("git", path=env["PATH"]) is None:
        raise UserError("the demo needs git (apt-get install git)")
    if not (ws / ".git").exists():
        git(ws, env, "init", "-q")
    for key in missing_identity(ws):  # the README's `animegan exp` commits in here; a fresh machine has no identity
        git(ws, env, "config", key, DEMO_IDENTITY[key])
    if not (ws / ".dvc").exists():
        subprocess.run(["dvc", "init", "-q"], cwd=ws, env=env, check=True)
    ignore = ws / ".gitignore"
    lines = ignore.read_text(encoding="utf-8").splitlines() if ignore.is_file() else []
    # the trainer's workspace lock and train.sync's upload snapshots (pipeline/train): never results to commit
    own = ("__pycache__/", "/inputs/", "/plots/report.*", "/models/.train.lock", "/models/.sync/")
    missing = [p for p in own if p not in lines]
    if missing:
        ignore.write_text("\n".join(lines + missing) + "\n", encoding="utf-8")


def untrack_cached_grids(ws: Path, env: dict[str, str], params: Params) -> None:
    """Workspaces made before the epoch grids moved from git to DVC's cache hold them in git, which `dvc repro`
    refuses ("already tracked by SCM"): take them out of git's index (the files stay; DVC then ignores them)."""
    grids = f"{params.paths.plots}/train/grids"
    git(ws, env, "rm", "-r", "-q", "--cached", "--ignore-unmatch", grids)


def commit_all(ws: Path, env: dict[str, str], message: str, only: tuple[str, ...] = ()) -> None:
    """Commit every change, or only those under `only`: before `dvc repro` the outputs of a demo killed mid-stage
    are not yet in DVC's .gitignore entries, and committing them to git would make DVC refuse them ever after."""
    git(ws, env, "add", "-A", "--", *(only or ["."]))
    if subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=ws, env=env).returncode != 0:
        git(ws, env, *GIT_ID, "commit", "-q", "-m", message)


def git(ws: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(["git", *args], cwd=ws, env=env, check=True)


REPORT_FILE = "report.html"  # the demo's own output, beside report.md (.gitignore's /plots/report.*)


def write_demo_report(ws: Path, params: Params) -> None:
    from pipeline.runs.report import build_report, write_report

    html = ws / params.paths.plots / REPORT_FILE
    report = build_report(ws, [], params.paths.metrics, params.paths.plots)
    write_report(report, html, html.with_suffix(".md"))


def print_summary(ws: Path, params: Params, seconds: float) -> None:
    from pipeline.runs.compare import compare_runs, format_comparison

    paths = params.paths
    result = compare_runs(ws, [], f"{paths.metrics}/{EVAL_METRICS_FILE}", alpha=0.05)
    print()
    print(format_comparison(result), end="")
    print("(untrained FID backbone: these FID/KID values compare demo runs with each other only)")
    print()
    rel = {
        "samples": ws / paths.samples,
        "submission": ws / paths.submission,
        "training curves and grids": ws / paths.plots / "train",
        "report": ws / paths.plots / REPORT_FILE,
        "report (Markdown)": ws / paths.plots / Path(REPORT_FILE).with_suffix(".md"),
        "metrics": ws / paths.metrics,
    }
    for name, path in rel.items():
        print(f"{name + ':':<27}{path}")
    print(f"\ndemo finished in {seconds:.0f} s. Try a variant and compare it with the run above:")
    print(f"  source {Path(sys.executable).parent}/activate && cd {ws}")
    print("  dvc exp run -n hinge -S train.loss=hinge && animegan compare HEAD hinge && animegan report HEAD hinge")


if __name__ == "__main__":
    sys.exit(main())
