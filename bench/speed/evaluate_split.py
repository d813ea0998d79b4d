"""Where `animegan evaluate`'s time goes, before and after a change: Inception, detector, copies, KID, PRDC, drawing
the samples, and the fixed rest (start-up, loading, hashing, calibration, ...), on a clean set of any size.

Usage:
    .venv/bin/python -m bench.speed.evaluate_split           # the course's size: 71,314 faces, 5 draws of 1,000
    .venv/bin/python -m bench.speed.evaluate_split --faces 1000 --samples 500 --repeats 1 --pytorch-fid   # small
    .venv/bin/python -m bench.speed.evaluate_split --baseline none --samples 200 --repeats 2   # this checkout only
    .venv/bin/python -m bench.speed.evaluate_split --workdir /tmp/split --baseline main        # keep the work folder

Set-up (timed separately, once per work folder): --faces clean faces (the 5k zip's faces, and beyond 5,000
variants made by bench/course/faces.py: flips, crops, colour shifts; in ~/.cache/animegan-bench, never committed);
a course DCGAN with random weights draws --samples images; the FID reference of the first --reference faces
(eval.fid.reference_count, eval.kid.reference_pool and eval.prdc.reference_count all --reference, as in issue 18);
the anime detector (the detector stage); this checkout's copy_index stage. Weights: the seeded `untrained`
Inception saved as a file (what pytorch-fid loads too, with --pytorch-fid).

Timed: `animegan evaluate --set eval.repeats=R` in a fresh child process, once with this checkout's code and once
with --baseline's (a git ref, exported with `git archive` into the work folder; `none` skips it), same data, same
machine, one after the other. Inside the child, the library functions that do each part are wrapped with timers
(pipeline.metrics.resources' extract_features, the AFD metric's detection_rate, KidReference.score, PrdcReference.score,
CopyCheck.check and CopyCheck.calibrate, the generator's draws); `fixed` is the child's wall time less those parts.
The figure of merit is evaluate's wall time over the Inception's (issue 18's goal: at most 1.15).
Prints the load average before and after each timed run: the machine may be shared, figures are indicative.
The table goes to bench/results/evaluate_split.json (--json); bench/results/evaluate_split.txt holds earlier runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.common import REPO, RESULTS, SHARED_ZIP, load_average, require, run_timed, write_result, zip_faces
from bench.course.faces import course_faces

PARTS = ("inception", "detector", "copies", "copy calibration", "kid", "prdc", "draws")

CHILD = """
import json, sys, time
t0 = time.perf_counter()
T = {}
def wrap(owner, name, key):
    f = getattr(owner, name)
    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            T[key] = T.get(key, 0.0) + time.perf_counter() - t
    setattr(owner, name, timed)
import pipeline.metrics.resources as res, pipeline.metrics.scores.afd as afd, pipeline.metrics.kid as kid
import pipeline.metrics.prdc as prdc, pipeline.metrics.copies as cp, pipeline.metrics.draws as st
wrap(res, "extract_features", "inception"); wrap(afd, "detection_rate", "detector")
wrap(kid.KidReference, "score", "kid"); wrap(prdc.PrdcReference, "score", "prdc")
wrap(cp.CopyCheck, "check", "copies"); wrap(cp.CopyCheck, "calibrate", "copy calibration")
wrap(st, "draw_images", "draws"); wrap(st, "jpeg_roundtrip", "draws")
T["imports"] = time.perf_counter() - t0
sys.argv = ARGV
from stages.cli import main
try:
    main()
except SystemExit as e:
    if e.code:
        raise
print("SPLIT " + json.dumps(T))
"""


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    ran = run_timed([sys.executable, *argv], cwd=cwd, env=env)
    return ran.seconds, ran.stdout


def stage(name: str, sets: list[str], cwd: Path, env: dict[str, str]) -> float:
    opts = [a for s in sets for a in ("--set", s)]
    return run(["-m", "stages.cli", name, *opts], cwd, env)[0]


def split(code: Path, sets: list[str], env: dict[str, str]) -> dict[str, float]:
    opts = [a for s in sets for a in ("--set", s)]
    before = load_average()
    child = CHILD.replace("ARGV", repr(["animegan", "evaluate", *opts]))
    wall, out = run(["-c", child], code, {**env, "PYTHONPATH": str(code)})
    parts = json.loads([line for line in out.splitlines() if line.startswith("SPLIT ")][-1][6:])
    parts = {k: parts.get(k, 0.0) for k in (*PARTS, "imports")}
    parts["fixed"] = wall - sum(parts[k] for k in PARTS)
    parts["wall"] = wall
    parts["load"] = f"{before} -> {load_average()}"
    return parts


def export(ref: str, work: Path) -> Path:
    target = work / f"code_{ref.replace('/', '_')}"
    if not target.exists():
        target.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def pytorch_fid(samples: Path, faces: np.ndarray, work: Path, env: dict[str, str]) -> float:
    from PIL import Image

    ref_png = work / "reference_png"
    if not ref_png.is_dir():
        ref_png.mkdir()
        for i, face in enumerate(faces):
            Image.fromarray(face).save(ref_png / f"{i}.png")
    return run(["-m", "pytorch_fid", str(samples), str(ref_png), "--device", "cpu"], REPO, env)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=71314, help="clean faces (training set size)")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--reference", type=int, default=1000)
    ap.add_argument("--baseline", default="main", help="git ref to compare with, or none")
    ap.add_argument("--detector", default="anime", choices=["anime", "mtcnn"])
    ap.add_argument("--pytorch-fid", action="store_true", help="also time python -m pytorch_fid (samples vs reference)")
    ap.add_argument("--workdir", type=Path, default=None, help="kept afterwards when given (set-up reused)")
    ap.add_argument("--json", type=Path, default=RESULTS / "evaluate_split.json", help="where the table goes")
    args = ap.parse_args()

    import torch

    from pipeline.metrics.inception import _untrained_state
    from pipeline.train.families.dcgan import Generator
    from pipeline.train.generator_file import generator_config, save_generator

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_split."))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ANIMEGAN_PROGRESS": "0", "TORCH_HOME": str(work / "torch_home")}
    try:
        if args.faces > 5000:
            source = course_faces(args.faces)
        else:
            source = work / "faces_small.npy"
            if not source.is_file():
                np.save(source, zip_faces(require(SHARED_ZIP), 64, args.faces))
        clean = work / "data" / "clean" / "faces.npy"
        clean.parent.mkdir(parents=True, exist_ok=True)
        if not clean.exists():
            clean.symlink_to(source)
        weights = work / "torch_home" / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"
        if not weights.is_file():
            weights.parent.mkdir(parents=True, exist_ok=True)
            torch.save(_untrained_state(0), weights)
        if not (work / "models" / "generator.pt").is_file():
            torch.manual_seed(0)
            config = generator_config("dcgan", 100, 64, 64)
            save_generator(work / "models" / "generator.pt", Generator(100, 64, 64), config)
        paths = {
            "clean": "data/clean", "fid_reference": "data/fid_reference", "models": "models", "samples": "samples",
            "submission": "submission.tgz", "metrics": "metrics", "plots": "plots", "detector": "models/detector",
        }  # fmt: skip
        common = [f"paths.{k}={work / v}" for k, v in paths.items()] + [
            f"sample.count={args.samples}", f"eval.repeats={args.repeats}", f"eval.fid.weights={weights}",
            f"eval.fid.cache_dir={work / 'cache'}", f"eval.fid.reference_count={args.reference}",
            f"eval.kid.reference_pool={args.reference}", f"eval.prdc.reference_count={args.reference}",
            f"eval.afd.detector={args.detector}",
        ]  # fmt: skip
        ours = [*common, f"paths.copy_index={work / 'data' / 'copy_index'}"]
        print(f"machine: {os.cpu_count()} cpus, torch {torch.__version__}; {args.faces:,} clean faces, "
              f"{args.repeats} draws of {args.samples}, reference {args.reference}, "
              f"detector {args.detector}")  # fmt: skip
        print(f"set-up (once per work folder; load {load_average()}):")
        done = {"sample": work / "samples", "detector": work / "models" / "detector" / "detector.pt"}
        setup: dict[str, float | None] = {}
        for name in ("sample", "fid-reference", *(["detector"] if args.detector == "anime" else []), "copy-index"):
            if name in done and done[name].exists():  # fid-reference and copy-index keep a current output themselves
                print(f"  {name:<14} (kept from an earlier run in this work folder)")
                setup[name] = None
                continue
            setup[name] = stage(name, ours, REPO, env)
            print(f"  {name:<14} {setup[name]:8.1f} s")
        rows = {"this checkout": split(REPO, ours, env)}
        if args.baseline != "none":
            rows[args.baseline] = split(export(args.baseline, work), common, env)
        keys = (*PARTS, "fixed")
        print(f"\nevaluate, seconds ({args.repeats} x {args.samples} images scored):")
        print(f"  {'code':<14}" + "".join(f"{k:>17}" for k in (*keys, "wall", "wall/inception")))
        for name, r in rows.items():
            ratio = r["wall"] / r["inception"] if r["inception"] else float("nan")
            print(f"  {name:<14}" + "".join(f"{r[k]:17.1f}" for k in (*keys, "wall")) + f"{ratio:17.3f}")
        for name, r in rows.items():
            print(f"  {name}: imports {r['imports']:.1f} s (in fixed); load average {r['load']}")
        theirs = None
        if args.pytorch_fid:
            theirs = pytorch_fid(work / "samples", np.load(clean, mmap_mode="r")[: args.reference], work, env)
            print(f"\npytorch-fid CLI (FID only, {args.samples} samples vs {args.reference} faces): {theirs:.1f} s; "
                  + ", ".join(f"{n} evaluate {r['wall']:.1f} s ({theirs / r['wall']:.2f}x)" for n, r in rows.items())
                  + f"; load {load_average()}")  # fmt: skip
        write_result(args.json, {"faces": args.faces, "samples": args.samples, "repeats": args.repeats,
                                 "reference": args.reference, "detector": args.detector, "setup_s": setup,
                                 "evaluate_s": rows, "pytorch_fid_s": theirs})  # fmt: skip
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
