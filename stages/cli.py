"""The `animegan` command: run any single pipeline stage, exactly as dvc.yaml does.

Usage:
    animegan download [--params params.yaml] [--set data.url=file:///tmp/faces.zip] [--dry-run]
    animegan clean --set data.image_size=32
    animegan make-faces out.zip --count 1000 --size 96
    animegan device [--set device=cuda:1]   # what the device param resolves to here; exit 2 when it cannot run
    animegan pull [--remote NAME]      # dvc pull, refused in one line (nothing changed) when the remote lacks a file
    animegan --help

Each stage command loads and validates params (with `--set` overrides), then calls `stages.<name>.execute(params)`.
A UserError becomes one line on stderr and exit code 2; a stage that stopped on purpose (Stopped: train at its time
budget) one line and exit code 75 (EXIT_STOPPED); nothing here holds pipeline logic.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
import yaml

from pipeline.core.atomic import DISK_ERRORS
from pipeline.core.config import Params, load_params, to_dict
from pipeline.core.errors import EXIT_STOPPED, Stopped, UserError, one_line
from pipeline.core.heap import keep_freed_memory
from pipeline.core.outputs import EVAL_METRICS_FILE

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Reproducible anime-face GAN pipeline: run one stage, as `dvc repro` does.",
)

ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="params file to read")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", "-s", help="override one param: section.key=value (repeatable)")
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="print the resolved params and exit")]


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def run_guarded(fn: Callable[[], object]) -> None:
    """Call fn; a UserError becomes one line and exit code 2, a Stopped one line and 75, never a traceback."""
    _setup_logging()
    keep_freed_memory()  # before the stage allocates: its large tensors then reuse memory (pipeline/core/heap.py)
    try:
        fn()
    except UserError as e:
        raise fail(one_line(e)) from None
    except Stopped as e:
        typer.echo(one_line(e), err=True)
        raise typer.Exit(code=EXIT_STOPPED) from None
    except OSError as e:
        if e.errno not in DISK_ERRORS:  # a full disk or a read-only folder is the user's to fix; the rest are bugs
            raise
        raise fail(f"cannot write {e.filename or 'an output'}: {DISK_ERRORS[e.errno]}") from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(code=130) from None


def resolve(params_path: Path, overrides: list[str] | None) -> Params:
    return load_params(params_path, overrides or [])


def print_params(params: Params) -> None:
    """--dry-run: the resolved params as YAML."""
    typer.echo(yaml.safe_dump(to_dict(params), sort_keys=False), nl=False)


def _stage_command(name: str, help_text: str) -> None:
    def command(
        params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None, dry_run: DryRunOpt = False
    ) -> None:
        def go() -> None:
            resolved = resolve(params, set_)
            if dry_run:
                return print_params(resolved)
            importlib.import_module(f"stages.{name}").execute(resolved)

        run_guarded(go)

    command.__doc__ = help_text
    app.command(name.replace("_", "-"))(command)


_stage_command("download", "Download and verify the dataset zip, extract it into paths.raw (never overwrites).")
_stage_command("clean", "Decode, filter, dedupe and resize the raw faces into paths.clean.")
_stage_command("train", "Train the GAN on the clean faces (resumes from paths.models/checkpoint.pt; torchrun: DDP).")
_stage_command("detector", "Train the anime-face detector (eval.afd.detector: anime) on the clean faces.")
_stage_command("sample", "Draw sample.count images from the generator: samples/1.jpg .. N.jpg and submission.tgz.")
_stage_command("fid_reference", "Inception statistics of the clean faces, cached in paths.fid_reference.")
_stage_command("copy_index", "The copy check's index over the clean faces and its calibration, in paths.copy_index.")


@app.command("evaluate")
def evaluate(
    images: Annotated[Path | None, typer.Option("--images", help="score this image folder instead (one draw)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="with --images: JSON path; default <DIR>-eval.json")] = None,
    params: ParamsOpt = Path("params.yaml"),
    set_: SetOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """FID, KID and AFD of the samples and eval.repeats-1 fresh draws -> metrics/eval.json (or of --images DIR)."""

    def go() -> None:
        resolved = resolve(params, set_)
        if dry_run:
            return print_params(resolved)
        from stages import evaluate as stage

        if images is None:
            metrics, target = stage.execute(resolved), Path(resolved.paths.metrics) / EVAL_METRICS_FILE
        else:
            metrics, target = stage.execute_on_images(resolved, images, out)
        typer.echo(stage.format_table(metrics))
        typer.echo(f"wrote {target}")

    run_guarded(go)


@app.command("device")
def device(params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None) -> None:
    """What the `device` param resolves to here (CUDA, MPS or CPU), every GPU seen and any problem (exit 2)."""

    def go() -> None:
        from pipeline.core.device import probe, status

        text, problem = status(resolve(params, set_).device, probe())
        typer.echo(text)
        if problem:
            raise UserError(problem)

    run_guarded(go)


@app.command("make-faces")
def make_faces(
    out: Annotated[Path, typer.Argument(help="zip file to write (course layout: faces/0.jpg ..)")],
    count: Annotated[int, typer.Option(min=1, help="number of faces")] = 1000,
    size: Annotated[int, typer.Option(min=8, help="side in pixels")] = 96,
    seed: Annotated[int, typer.Option(min=0, help="generator seed")] = 0,
) -> None:
    """Write N generated cartoon anime faces as a zip laid out like the course's faces.zip."""

    def go() -> None:
        from pipeline.data.cartoon import write_faces_zip

        write_faces_zip(out, count=count, size=size, seed=seed)
        typer.echo(f"wrote {count} faces to {out}")

    run_guarded(go)


RevsArg = Annotated[
    list[str] | None,
    typer.Argument(help="git revisions or DVC experiment names (`dvc exp show`); none: the workspace"),
]


@app.command("compare")
def compare(
    revs: Annotated[
        list[str] | None,
        typer.Argument(
            help="git revisions or DVC experiment names (`dvc exp show`); a+b+c pools runs of one setup trained "
            "with other seeds into a group; none: the workspace"
        ),
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
    set_: SetOpt = None,
    alpha: Annotated[float, typer.Option(help="significance level of the pairwise tests")] = 0.05,
) -> None:
    """Table of FID, KID, AFD (mean ± std over draws) per run, and whether each pair differs beyond noise."""

    def go() -> None:
        from pipeline.runs.compare import compare_runs, format_comparison

        eval_path = f"{resolve(params, set_).paths.metrics}/{EVAL_METRICS_FILE}"
        result = compare_runs(Path.cwd(), list(revs or []), eval_path, alpha)
        typer.echo(format_comparison(result), nl=False)
        for warning in result.warnings:
            typer.echo(f"warning: {warning}", err=True)

    run_guarded(go)


@app.command("report")
def report(
    revs: RevsArg = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="r.html or r.md: writes both r.html and r.md there (default: plots/report.html)"),
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
    set_: SetOpt = None,
) -> None:
    """One self-contained HTML report (+ Markdown twin) of the runs: metrics, samples, curves, spread."""

    def go() -> None:
        from pipeline.runs.report import build_report, report_paths, write_report

        paths = resolve(params, set_).paths
        html_path, md_path = report_paths(out or Path(paths.plots) / "report.html")
        built = build_report(Path.cwd(), list(revs or []), paths.metrics, paths.plots)
        write_report(built, html_path, md_path)
        typer.echo(f"wrote {html_path} and {md_path}")

    run_guarded(go)


@app.command("exp")
def exp(
    name: Annotated[str, typer.Argument(help="a preset: animegan exp --list")] = "",
    set_: SetOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the dvc command only")] = False,
    list_: Annotated[
        bool, typer.Option("--list", help="list the presets: images to train, estimated T4 and CPU time, purpose")
    ] = False,
    seed: Annotated[
        int | None, typer.Option("--seed", help="train with this train.seed, as experiment NAME-seedSEED")
    ] = None,
    push: Annotated[
        str | None,
        typer.Option(
            "--push",
            metavar="REMOTE",
            help="when the run succeeds: dvc exp push REMOTE NAME (git ref; cached outputs to the default DVC remote)",
        ),
    ] = None,
    queue: Annotated[
        bool, typer.Option("--queue", help="only queue it (dvc exp run --queue); run the queue with dvc queue start")
    ] = False,
) -> None:
    """Run or continue a preset experiment: its params, dvc repro, dvc exp save -n NAME (stages/experiments.py)."""
    from stages import experiments

    if list_ or not name:
        typer.echo(experiments.LIST_HEADER)
        for preset in experiments.PRESETS:
            typer.echo(experiments.preset_line(preset))
        return
    code = 0

    def go() -> None:
        nonlocal code
        code = experiments.run_experiment(name, set_ or [], dry_run, seed, push, queue)

    run_guarded(go)
    raise typer.Exit(code)


@app.command("pull")
def pull(
    targets: Annotated[
        list[str] | None, typer.Argument(help="stages or paths to pull (default: every output of this commit)")
    ] = None,
    remote: Annotated[str | None, typer.Option("--remote", "-r", help="DVC remote (default: the default one)")] = None,
) -> None:
    """dvc pull that changes nothing unless every file arrived (check, fetch, checkout); else one line, exit 2."""
    code = 0

    def go() -> None:
        nonlocal code
        from pipeline.runs.remote import pull as pull_outputs
        from stages.experiments import dvc_executable

        code = pull_outputs(Path.cwd(), remote, targets or [], dvc_executable())

    run_guarded(go)
    raise typer.Exit(code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
