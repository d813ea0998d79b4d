"""Model race on real faces: the course's DCGAN and WGAN-GP against rpgan + R1 + EMA ramp-up and r3gan-tiny.

Usage:
    python -m bench.models.race [--zip ../shared/data/anime-faces-5k.zip] [--size 32] [--images 1920]
        [--points 2] [--seeds 1 2 3] [--samples 32] [--reference 256] [--detector-faces 800] [--jobs 3]
        [--models dcgan wgan-gp dcgan-rpgan-r1 r3gan-tiny] [--work /tmp/model_race] [--out bench/results]

Each model (bench/models/setups.py) trains with each seed on the zip's faces (resized to --size) through
pipeline.train.loop.train_gan, in --points equal segments up to --images real images (a longer run continues a
shorter one exactly, so the segments cost only a checkpoint reload). After each segment its generator (the EMA)
draws --samples images (sample seed 0), scored like the evaluate stage: FID and KID on the untrained Inception
backbone (eval.fid.weights untrained) against --reference real faces, and AFD with an anime detector trained here on
the same faces (pipeline.metrics.detector.training, cached in --work). Every point becomes a commit of
metrics/eval.json in a git repository under --work, and `animegan compare` tests the seed groups: at equal images
seen (the last point) and at equal wall-clock (each run's last point whose training seconds are within the fastest
model's median total, +10%). With few samples, FID is biased upward (the same bias for every model at equal
--samples); KID is not. The tables (as markdown, "report") and every point go to --out/model_race.json, FID against
images seen and against seconds to model_race.png (model_race.md: the tables of the run before the JSON held them).
The runs share the machine (--jobs processes, one torch thread each): seconds depend on its load, printed with the
figures.
The defaults fit about 40 minutes on 2 cores shared with other work (load average near 20): a budget that
shows early training only; on a machine of its own, raise --images (and --samples) for a real race.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import REPO, RESULTS, SHARED_ZIP, require, write_result, zip_faces
from bench.models.setups import SETUPS, setup_overrides

COLOURS = {"dcgan": (31, 119, 180), "wgan-gp": (214, 39, 40), "dcgan-rpgan-r1": (44, 160, 44),
           "r3gan-tiny": (148, 103, 189)}  # fmt: skip
_CACHE: dict[str, Any] = {}


def setup_reference(args: argparse.Namespace, faces: np.ndarray) -> str:
    from pipeline.metrics.fid_reference import compute_reference, save_reference
    from pipeline.metrics.inception import load_backbone

    folder = args.work / f"reference-{args.size}-{args.reference}"
    if not folder.is_dir():
        backbone = load_backbone("untrained", "", args.work, 0, 10.0, device="cpu")
        pick = np.linspace(0, len(faces) - 1, args.reference).round().astype(int)
        ref = compute_reference(backbone, faces[pick], 0, 32, 0, 0)
        tmp = folder.with_name(folder.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        save_reference(ref, tmp, "anime-faces-5k")
        tmp.rename(folder)
    return str(folder)


def setup_detector(args: argparse.Namespace, faces: np.ndarray) -> str:
    from pipeline.core.config import load_params
    from pipeline.metrics.detector.model import HOLDOUT_FILE, save_detector
    from pipeline.metrics.detector.training import fit_detector

    folder = args.work / f"detector-{args.size}-{args.detector_faces}"
    if not folder.is_dir():
        import torch

        sets = [f"detector.max_train_faces={args.detector_faces}", "detector.epochs=2"]
        p = load_params(REPO / "params.yaml", sets).detector
        result = fit_detector(faces, p, torch.device("cpu"))
        tmp = folder.with_name(folder.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        save_detector(tmp, result.model, result.meta)
        np.save(tmp / HOLDOUT_FILE, result.split.holdout)
        tmp.rename(folder)
    return str(folder)


def setup_task(task: tuple[str, argparse.Namespace]) -> str:
    kind, args = task
    _one_thread()
    faces = zip_faces(args.zip, args.size)
    return setup_reference(args, faces) if kind == "reference" else setup_detector(args, faces)


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def scorer(args: argparse.Namespace, faces: np.ndarray) -> dict[str, Any]:
    """Backbone, reference, detector and real faces, loaded once per worker process."""
    if not _CACHE:
        from pipeline.metrics.detector.afd_real import real_subset
        from pipeline.metrics.detector.model import load_detector_from
        from pipeline.metrics.fid_reference import load_reference
        from pipeline.metrics.inception import load_backbone
        from pipeline.metrics.resources import RealFaces

        detector = load_detector_from(args.work / f"detector-{args.size}-{args.detector_faces}")
        _CACHE.update(
            backbone=load_backbone("untrained", "", args.work, 0, 10.0, device="cpu"),
            reference=load_reference(args.work / f"reference-{args.size}-{args.reference}"),
            detector=detector,
            real=RealFaces(images=real_subset(faces, 500, among=detector.unseen_faces), origin="detector holdout"),
        )
    return _CACHE


def score_point(args: argparse.Namespace, faces: np.ndarray, generator_path: Path) -> dict[str, Any]:
    """FID, KID and AFD (with afd_real) of one draw by evaluate's code (the metric registry), at the race's settings."""
    from pipeline.core.config import load_params
    from pipeline.metrics.provenance import metric_provenance, provenance
    from pipeline.metrics.resources import Resources
    from pipeline.metrics.scoring import chosen, score_draws
    from pipeline.train.generator_file import load_generator
    from pipeline.train.sampling import generate

    ctx = scorer(args, faces)
    settings = load_params(REPO / "params.yaml", ["eval.fid.batch_size=32", "eval.kid.subsets=50",
                                                  f"eval.kid.subset_size={min(args.samples, 64)}", "eval.kid.seed=0"])
    resources = Resources(settings.eval, ctx["backbone"], ctx["reference"], ctx["detector"], real=ctx["real"])
    images = generate(load_generator(generator_path), seed=0, draw=0, count=args.samples, batch_size=64)
    names = ("fid", "kid", "afd")
    metrics = score_draws([images], resources, names)
    used = metric_provenance(resources, chosen(names, resources))
    metrics["provenance"] = provenance(args.data_sha256, ctx["backbone"], ctx["detector"], args.samples, 1,
                                       ctx["reference"], None, extra=used)  # fmt: skip
    return metrics


def run_task(task: tuple[str, int, argparse.Namespace]) -> list[dict[str, Any]]:
    """One model and seed: train in segments, score after each; the points."""
    import torch

    from pipeline.core.config import load_params
    from pipeline.core.distributed import DistInfo
    from pipeline.train.loop import TrainPaths, train_gan

    name, seed, args = task
    _one_thread()
    faces = zip_faces(args.zip, args.size)
    folder = args.work / "runs" / f"{name}-s{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    paths = TrainPaths(folder / "checkpoint.pt", folder / "generator.pt")
    dist_info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    base = load_params(REPO / "params.yaml", [*setup_overrides(name, args.size, args.images), f"train.seed={seed}"])
    per_step = base.train.batch_size * base.train.n_critic
    total_steps = -(-args.images // per_step)
    points = []
    for k in range(1, args.points + 1):
        steps = round(total_steps * k / args.points)
        sets = [*setup_overrides(name, args.size, args.images), f"train.seed={seed}", f"train.max_steps={steps}",
                f"train.checkpoint_every={steps}"]  # fmt: skip
        params = load_params(REPO / "params.yaml", sets)
        summary = train_gan(faces, params.train, paths, dist_info)
        t0 = time.perf_counter()
        metrics = score_point(args, faces, paths.generator)
        points.append({"model": name, "seed": seed, "point": k, "steps": steps, "images": summary["images_seen"],
                       "train_s": summary["wall_s"], "score_s": time.perf_counter() - t0, "eval": metrics})  # fmt: skip
        print(f"{name} seed {seed} point {k}: {summary['images_seen']} images, {summary['wall_s']:.0f} s, "
              f"FID {metrics['fid']['mean']:.2f} KID {metrics['kid']['mean']:.4f} AFD {metrics['afd']['mean']:.3f}",
              flush=True)  # fmt: skip
    (folder / "points.json").write_text(json.dumps(points) + "\n")
    return points


def tag(p: dict[str, Any]) -> str:
    return f"{p['model']}-s{p['seed']}-p{p['point']}"


def commit_points(repo: Path, points: list[dict[str, Any]]) -> None:
    """One commit (and tag) of metrics/eval.json per point: what `animegan compare` reads."""
    shutil.rmtree(repo, ignore_errors=True)
    (repo / "metrics").mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", repo / "params.yaml")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    for p in points:
        (repo / "metrics" / "eval.json").write_text(json.dumps(p["eval"], indent=2, sort_keys=True) + "\n")
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", tag(p)], check=True)
        subprocess.run([*git, "tag", tag(p)], check=True)


def compare(repo: Path, groups: list[list[dict[str, Any]]]) -> str:
    animegan = Path(sys.executable).with_name("animegan")
    revs = ["+".join(tag(p) for p in group) for group in groups]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([str(animegan), "compare", *revs], cwd=repo, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return f"animegan compare failed: {done.stderr.strip()}\n"
    return done.stdout


def equal_wall_points(points: list[dict[str, Any]], models: list[str]) -> tuple[float, list[list[dict[str, Any]]]]:
    """Budget: the fastest model's median training seconds to its last point; each run's last point within it."""
    last = max(p["point"] for p in points)
    medians = [float(np.median([p["train_s"] for p in points if p["model"] == m and p["point"] == last]))
               for m in models]  # fmt: skip
    budget = min(medians) * 1.1
    groups = []
    for m in models:
        group = []
        for seed in sorted({p["seed"] for p in points if p["model"] == m}):
            run = [p for p in points if p["model"] == m and p["seed"] == seed]
            within = [p for p in run if p["train_s"] <= budget]
            group.append(within[-1] if within else {**run[0], "over_budget": True})
        groups.append(group)
    return budget / 1.1, groups


def table(groups: list[list[dict[str, Any]]]) -> str:
    rows = ["| model | images seen | train s | FID | KID | AFD |", "|---|---|---|---|---|---|"]
    for group in groups:

        def cell(key: str, digits: int, group: list[dict[str, Any]] = group) -> str:
            v = [p["eval"][key]["mean"] for p in group]
            return f"{np.mean(v):.{digits}f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.{digits}f}"

        images = "/".join(str(p["images"]) + ("*" if p.get("over_budget") else "") for p in group)
        seconds = "/".join(f"{p['train_s']:.0f}" for p in group)
        rows.append(f"| {group[0]['model']} | {images} | {seconds} | {cell('fid', 2)} | {cell('kid', 4)} | "
                    f"{cell('afd', 3)} |")  # fmt: skip
    return "\n".join(rows)


def plot(points: list[dict[str, Any]], models: list[str], path: Path) -> None:
    """FID against images seen (left) and training seconds (right): one dot per run and point, lines of means."""
    from PIL import Image, ImageDraw

    w, h, pad = 560, 380, 56
    img = Image.new("RGB", (2 * w, h + 40), "white")
    draw = ImageDraw.Draw(img)
    fids = [p["eval"]["fid"]["mean"] for p in points]
    lo, hi = np.log10(min(fids) * 0.9), np.log10(max(fids) * 1.1)  # log scale: early FIDs are far above late ones
    for panel, key, label in ((0, "images", "real images seen"), (1, "train_s", "training seconds")):
        x0 = panel * w
        xmax = max(p[key] for p in points) * 1.05

        def xy(p: dict[str, Any], x0: int = x0, key: str = key, xmax: float = xmax) -> tuple[float, float]:
            fid = np.log10(p["eval"]["fid"]["mean"])
            return x0 + pad + (w - 2 * pad) * p[key] / xmax, h - pad + 20 - (h - 2 * pad) * (fid - lo) / (hi - lo)

        draw.rectangle([x0 + pad, pad - 20, x0 + w - pad, h - pad + 20], outline="black")
        draw.text((x0 + w / 2 - 50, h - 20), label, fill="black")
        draw.text((x0 + 4, pad - 36), f"FID (untrained backbone, log scale) {10**lo:.0f} .. {10**hi:.0f}", fill="black")
        for tick in np.linspace(0, xmax, 5)[1:]:
            x = x0 + pad + (w - 2 * pad) * tick / xmax
            draw.text((x - 14, h - pad + 24), f"{tick:.0f}", fill="black")
        for m in models:
            colour = COLOURS.get(m, (0, 0, 0))
            mine = [p for p in points if p["model"] == m]
            for p in mine:
                x, y = xy(p)
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
            means = []
            for k in sorted({p["point"] for p in mine}):
                at = [p for p in mine if p["point"] == k]
                means.append({key: np.mean([p[key] for p in at]),
                              "eval": {"fid": {"mean": np.mean([p["eval"]["fid"]["mean"] for p in at])}}})  # fmt: skip
            draw.line([xy(p) for p in means], fill=colour, width=2)
    for i, m in enumerate(models):
        draw.text((pad + 150 * i, h + 22), m, fill=COLOURS.get(m, (0, 0, 0)))
    img.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zip", type=Path, default=SHARED_ZIP)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--images", type=int, default=1920, help="real images seen by every run (equal-images budget)")
    ap.add_argument("--points", type=int, default=2, help="scored points per run, evenly spaced in images")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--samples", type=int, default=32, help="generated images scored per point")
    ap.add_argument("--reference", type=int, default=256, help="real faces in the FID/KID reference")
    ap.add_argument("--detector-faces", type=int, default=800, help="faces the AFD detector trains on (2 epochs)")
    ap.add_argument("--jobs", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    ap.add_argument("--work", type=Path, default=Path("/tmp/model_race"))
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--report-only", action="store_true", help="tables and plot from the runs finished in --work")
    args = ap.parse_args()
    require(args.zip)
    args.work.mkdir(parents=True, exist_ok=True)
    args.data_sha256 = hashlib.sha256(args.zip.read_bytes()).hexdigest()
    os.environ.update(OMP_NUM_THREADS="1", ANIMEGAN_PROGRESS="0")
    started, load_before = time.perf_counter(), os.getloadavg()
    if args.report_only:
        points = [p for f in sorted((args.work / "runs").glob("*/points.json")) for p in json.loads(f.read_text())]
        points = [p for p in points if p["model"] in args.models and p["seed"] in args.seeds]
        points.sort(key=lambda p: (args.models.index(p["model"]), p["seed"], p["point"]))
        return report(args, points, float("nan"), load_before)
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        pool.map(setup_task, [("reference", args), ("detector", args)])
        print(f"reference and detector ready after {time.perf_counter() - started:.0f} s", flush=True)
        tasks = [(m, s, args) for m in reversed(args.models) for s in args.seeds]  # slowest (r3gan) first
        points = [p for run in pool.map(run_task, tasks, chunksize=1) for p in run]
    points.sort(key=lambda p: (args.models.index(p["model"]), p["seed"], p["point"]))
    report(args, points, time.perf_counter() - started, load_before)


def report(args: argparse.Namespace, points: list[dict[str, Any]], wall: float, load_before: tuple) -> None:
    repo = args.work / "compare"
    commit_points(repo, points)
    last = max(p["point"] for p in points)
    by_model = [[p for p in points if p["model"] == m and p["point"] == last] for m in args.models]
    budget, at_wall = equal_wall_points(points, args.models)
    load = os.getloadavg()
    timing = (
        f"Total {wall / 60:.1f} min on {os.cpu_count()} CPU cores, {args.jobs} runs at a time, one torch thread each; "
        f"load average {load_before[0]:.1f} at the start, {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end."
    )
    if wall != wall:  # --report-only: keep the timing line of the run that made the points
        timing = previous_timing(args.out) or timing
    lines = [
        f"# Model race: {len(args.seeds)} seeds, {args.size} px, {args.images} real images, {args.samples} samples "
        f"scored per point against {args.reference} real faces (untrained Inception; anime detector trained here)",
        timing,
        "", f"## Equal images seen ({args.images})", "", table(by_model), "", compare(repo, by_model),
        f"## Equal wall-clock (each run's last point within {budget:.0f} s of training)", "", table(at_wall),
        "", "\\* no point within the budget: the run's first point, trained longer than the budget.", "",
        compare(repo, at_wall),
    ]  # fmt: skip
    text = "\n".join(lines)
    print(text)
    keep = [{k: v for k, v in p.items() if k != "eval"} | {m: p["eval"][m]["mean"] for m in ("fid", "kid", "afd")}
            for p in points]  # fmt: skip
    write_result(args.out / "model_race.json", {"args": {k: str(v) for k, v in vars(args).items()}, "timing": timing,
                                                "report": text, "points": keep})  # fmt: skip
    plot(points, args.models, args.out / "model_race.png")


def previous_timing(out: Path) -> str | None:
    """The timing line of the race recorded in `out`: model_race.json's, or the older model_race.md's second line."""
    try:
        return json.loads((out / "model_race.json").read_text())["timing"]
    except (OSError, ValueError, KeyError):
        pass
    md = out / "model_race.md"
    return md.read_text().splitlines()[1] if md.is_file() else None


if __name__ == "__main__":
    main()
