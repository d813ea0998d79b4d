"""How far does this pipeline get on real anime faces on a CPU? Train recipes on the shared 5,000 real faces, score
snapshots while training, then sample the best snapshot with and without the sampling knobs and score each setting.

Usage (from the repository root; about 75 minutes on 2 cores with the defaults):
    .venv/bin/python -m bench.models.real_faces                       # every recipe, 32 px, docs/results.md
    .venv/bin/python -m bench.models.real_faces --recipes course --kimg 20 --out /tmp/results.md   # a quick look
    .venv/bin/python -m bench.models.real_faces --page-only --workdir DIR   # the page again from the last results

Every step is the `animegan` command a user runs, in workspaces under --workdir: one base workspace runs download,
clean, detector, fid-reference and copy-index once; each recipe's workspace links the base's data/ and detector
and trains there (recipes train side by side, one torch thread each). Then, per recipe, `animegan sample` and
`animegan evaluate` for each sampling setting (the last and the best snapshot; truncation; the critic's top-k).
The FID here uses the untrained, calibrated Inception (`eval.fid.weights: untrained`: the real weights cannot be
downloaded on this machine): its numbers rank runs against each other on this data and are not pytorch-fid's.
Writes the figures as JSON (bench/results/real_faces.json) and the results page (--out, default docs/results.md)
with the snapshot curves, the grids at the first, best and last snapshot, and one table row per sampling setting.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from bench.common import REPO, RESULTS, SHARED_ZIP, load_average, require, run_timed, write_result

RECIPES: dict[str, list[str]] = {
    # the course's sample DCGAN and its settings (BCE, Adam 1e-4, betas 0.5), at 32 px, EMA for sampling
    "course": [],
    # the same networks with R3GAN's objective: relativistic loss, lazy R1, EMA with ramp-up, flips
    "rpgan-r1": ["train.loss=rpgan", "train.dcgan.critic_norm=none", "train.gamma=1.0", "train.penalties=[r1]",
                 "train.reg_every=4", "train.ema_kimg=10.0", "train.lr_g=2.0e-4", "train.lr_d=2.0e-4",
                 "train.betas=[0.0, 0.99]", "train.flip=true"],  # fmt: skip
}
# and with DiffAugment, made for face sets this small (FFHQ 5k: FID 26.6 -> 10.5)
RECIPES["rpgan-r1-augment"] = [*RECIPES["rpgan-r1"], "train.augment=[color,translation,cutout]"]
SAMPLINGS: dict[str, list[str]] = {  # name -> sample settings, scored in this order
    "last": ["sample.snapshot=last"],
    "best": ["sample.snapshot=best"],
    "best, truncation 0.9": ["sample.snapshot=best", "sample.truncation=0.9"],
    "best, truncation 0.7": ["sample.snapshot=best", "sample.truncation=0.7"],
    "best, truncation 0.5": ["sample.snapshot=best", "sample.truncation=0.5"],
    "best, critic top-4": ["sample.snapshot=best", "sample.rejection=top_k", "sample.rejection_k=4"],
}
COLUMNS = ("fid", "kid", "afd", "afd_rel", "precision", "recall")
NOTES = "<!-- notes: kept when the bench rewrites the page -->"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.models.real_faces", description=__doc__.split("\n")[0])
    parser.add_argument("--zip", type=Path, default=SHARED_ZIP, help="the real faces, in the course zip's layout")
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/animegan-real-faces"))
    parser.add_argument("--size", type=int, default=32, help="data.image_size")
    parser.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated, of {', '.join(RECIPES)}")
    parser.add_argument("--kimg", type=float, default=100.0, help="thousands of real images each recipe trains on")
    parser.add_argument("--snapshot-kimg", type=float, default=10.0)
    parser.add_argument("--count", type=int, default=200, help="images per draw (sample.count and snapshots)")
    parser.add_argument("--repeats", type=int, default=2, help="eval.repeats: draws scored per setting")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results.md")
    parser.add_argument("--page-only", action="store_true", help="rewrite --out from the last results and --workdir")
    args = parser.parse_args(argv)
    if args.page_only:
        figures = json.loads((RESULTS / "real_faces.json").read_text(encoding="utf-8"))
        write_page(args.out, figures, {r: args.workdir / r for r in figures["recipes"]})
        print(f"wrote {args.out}")
        return 0
    require(args.zip)
    recipes = [r for r in args.recipes.split(",") if r]
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        sys.exit(f"unknown recipes {unknown}; known: {', '.join(RECIPES)}")
    started, load_before = time.time(), load_average()
    base = prepare_base(args)
    def train_and_score(recipe: str) -> tuple[dict[str, Any], dict[str, Any]]:
        trained = train_recipe(args, base, recipe)
        return trained, score_settings(args, trained)

    with ThreadPoolExecutor(len(recipes)) as pool:  # recipes side by side, one torch thread each
        done = dict(zip(recipes, pool.map(train_and_score, recipes), strict=True))
    trained, rows = {r: done[r][0] for r in recipes}, {r: done[r][1] for r in recipes}
    figures = {
        "recipes": {r: {"settings": RECIPES[r], "train": trained[r]["summary"], "sampling": rows[r]} for r in recipes},
        "size": args.size, "kimg": args.kimg, "count": args.count, "repeats": args.repeats,
        "wall_s": round(time.time() - started, 1), "load_average_before": load_before,
    }  # fmt: skip
    write_result(RESULTS / "real_faces.json", figures)
    write_page(args.out, figures, {r: trained[r]["workspace"] for r in recipes})
    print(f"wrote {args.out} and {RESULTS / 'real_faces.json'} in {figures['wall_s'] / 60:.1f} min")
    return 0


def animegan(workspace: Path, *args: str, sets: list[str] = (), log: str = "") -> None:
    cmd = [sys.executable, "-m", "stages.cli", *args, *[a for s in sets for a in ("--set", s)]]
    env = {**os.environ, "PYTHONPATH": str(REPO), "ANIMEGAN_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    ran = run_timed(cmd, cwd=workspace, env=env, log=workspace / f"{log or args[0]}.log", check=False)
    if ran.code != 0:
        sys.exit(f"`animegan {' '.join(args)}` failed in {workspace} (exit {ran.code}): see its .log there")


def write_params(workspace: Path, sets: dict[str, Any]) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    for key, value in sets.items():
        *path, last = key.split(".")
        node = params
        for part in path:
            node = node[part]
        node[last] = value
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def prepare_base(args: argparse.Namespace) -> Path:
    """download, clean, detector, fid-reference and copy-index once, in workdir/base."""
    base = args.workdir / "base"
    write_params(base, base_settings(args))
    for stage in ("download", "clean", "detector", "fid-reference", "copy-index"):
        animegan(base, stage)
    return base


def base_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "data.url": str(args.zip.resolve()), "data.image_size": args.size,
        "eval.fid.weights": "untrained", "eval.fid.reference_count": 1000, "eval.kid.reference_pool": 1000,
        "eval.kid.subset_size": min(args.count, 1000), "eval.kid.subsets": 20, "eval.prdc.reference_count": args.count,
        "eval.copies.calibration_count": 500, "eval.repeats": args.repeats, "eval.afd.real_count": 500,
        "sample.count": args.count, "train.snapshot_count": args.count,
    }  # fmt: skip


def train_recipe(args: argparse.Namespace, base: Path, recipe: str) -> dict[str, Any]:
    workspace = args.workdir / recipe
    write_params(workspace, base_settings(args))
    for shared in ("data", "models/detector"):
        link = workspace / shared
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to((base / shared).resolve(), target_is_directory=True)
    faces = 5000  # the shared zip; clean keeps every face of it
    epochs = max(1, round(args.kimg * 1000 / faces))
    sets = [*RECIPES[recipe], f"train.epochs={epochs}", f"train.snapshot_kimg={args.snapshot_kimg}",
            "train.checkpoint_every=250", "train.grid_size=64"]  # fmt: skip
    t0 = time.time()
    animegan(workspace, "train", sets=sets)
    summary = json.loads((workspace / "metrics" / "train.json").read_text(encoding="utf-8"))
    summary["bench_wall_s"] = round(time.time() - t0, 1)
    return {"workspace": workspace, "summary": summary, "sets": sets}


def score_settings(args: argparse.Namespace, trained: dict[str, Any]) -> dict[str, Any]:
    workspace, rows = trained["workspace"], {}
    for name, sets in SAMPLINGS.items():
        slug = name.replace(", ", "-").replace(" ", "-")
        animegan(workspace, "sample", sets=[*trained["sets"], *sets], log=f"sample-{slug}")
        animegan(workspace, "evaluate", sets=[*trained["sets"], *sets], log=f"evaluate-{slug}")
        metrics = json.loads((workspace / "metrics" / "eval.json").read_text(encoding="utf-8"))
        rows[name] = {k: metrics.get(k) for k in (*COLUMNS, "afd_real")}
        grid = workspace / "plots" / "samples_grid.png"
        if grid.is_file():
            shutil.copyfile(grid, workspace / f"samples-{slug}.png")
    return rows


def cell(value: Any) -> str:
    if isinstance(value, dict) and "mean" in value:
        return f"{value['mean']:.4g} ± {value['std']:.2g}"
    return "n/a" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def write_page(out: Path, figures: dict[str, Any], workspaces: dict[str, Path]) -> None:
    """docs/results.md: per recipe, the snapshot history, grids (copied beside the page) and the sampling table."""
    images = out.parent / "images"
    images.mkdir(parents=True, exist_ok=True)
    lines = ["# Real faces: what this pipeline makes on a CPU", "",
             f"Made by `python -m bench.models.real_faces` ({figures['wall_s'] / 60:.0f} min on 2 CPU cores, load "
             f"averages {figures['load_average_before']} at the start): {figures['kimg']:g} thousand real "
             f"images of training at {figures['size']} px on the 5,000 real anime faces of the shared zip, "
             "snapshots scored while training, then each sampling setting scored on "
             f"{figures['repeats']} fresh draws of {figures['count']} images (mean ± std over the draws).", "",
             "FID and KID use the untrained, calibrated Inception (the real weights cannot be downloaded here): they "
             "rank these runs against each other and are not comparable with pytorch-fid's numbers. AFD is the "
             "anime-face detector trained by the detector stage on these faces; afd_rel = AFD / the detector's rate "
             "on held-out real faces. The best snapshot is picked on noisy scores, which flatters it: the tables "
             "below score it again on fresh draws.", ""]  # fmt: skip
    lines += summary_table(figures)
    for recipe, data in figures["recipes"].items():
        lines += recipe_section(recipe, data, workspaces[recipe], images, out.parent)
    old = out.read_text(encoding="utf-8") if out.is_file() else ""
    notes = old[old.index(NOTES) :] if NOTES in old else ""  # the reading of the numbers, written by a person
    out.write_text("\n".join(lines) + "\n" + notes, encoding="utf-8")


def summary_table(figures: dict[str, Any]) -> list[str]:
    """One row per recipe: its best snapshot, and the sampling setting with the highest AFD on fresh draws."""
    lines = ["| recipe | best snapshot | best sampling (by AFD) | AFD | afd_rel | FID | precision | recall |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for recipe, data in figures["recipes"].items():
        best = (data["train"].get("snapshots") or {}).get("best") or {}
        name, row = max(data["sampling"].items(), key=lambda item: _mean(item[1].get("afd")))
        cells = [cell(row.get(k)) for k in ("afd", "afd_rel", "fid", "precision", "recall")]
        lines.append(f"| {recipe} | {best.get('kimg', 0):.0f} kimg | {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _mean(value: Any) -> float:
    return value["mean"] if isinstance(value, dict) else float(value or 0.0)


def recipe_section(recipe: str, data: dict[str, Any], workspace: Path, images: Path, page_dir: Path) -> list[str]:
    train = data["train"]
    lines = [f"## {recipe}", "", f"Settings: `{' '.join(data['settings']) or 'the course defaults'}`; trained "
             f"{train.get('images_seen', 0) / 1000:.0f} kimg in {train.get('bench_wall_s', 0) / 60:.0f} min.", ""]
    snapshots = train.get("snapshots") or {}
    history = snapshots.get("history") or []
    if history:
        keys = [k for k in history[0] if k not in ("step", "kimg")]
        lines += ["Snapshots scored while training (the best so far in the last columns):", "",
                  "| kimg | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        lines += [f"| {h['kimg']:.0f} | " + " | ".join(cell(h.get(k)) for k in keys) + " |" for h in history]
        best = snapshots.get("best") or {}
        scores = ", ".join(f"{k} {cell(v)}" for k, v in best.items() if k not in ("step", "kimg"))
        lines += ["", f"Best snapshot: step {best.get('step')} at {best.get('kimg', 0):.0f} kimg ({scores}).", ""]
    grids = workspace / "plots" / "train" / "grids"
    firsts = sorted(grids.glob("snapshot_*.png"))[:1]
    best_step = (snapshots.get("best") or {}).get("step")
    shown = [("first snapshot", firsts[0] if firsts else None),
             ("best snapshot", grids / f"snapshot_{best_step:07d}.png" if best_step is not None else None),
             ("last", grids / "final.png")]  # fmt: skip
    pictures = []
    for label, grid in shown:
        if grid is not None and grid.is_file():
            target = images / f"real-faces-{recipe}-{label.replace(' ', '-')}.png"
            shutil.copyfile(grid, target)
            pictures.append(f"![{recipe}: {label}]({target.relative_to(page_dir).as_posix()})")
    if pictures:  # side by side: the EMA generator on the same 64 latents at each point
        lines += [" ".join(pictures), "", "Left to right: " + ", ".join(label for label, _ in shown) + ".", ""]
    lines += ["| sampling | " + " | ".join(COLUMNS) + " |", "|---|" + "---|" * len(COLUMNS)]
    for name, row in data["sampling"].items():
        lines.append(f"| {name} | " + " | ".join(cell(row.get(k)) for k in COLUMNS) + " |")
    return [*lines, ""]


if __name__ == "__main__":
    raise SystemExit(main())
