"""Benchmark `animegan evaluate` (cached reference) against `python -m pytorch_fid` on the same images and weights,
and the cost of the copy check against 5k and (extrapolated) 71k training faces.

Usage:
    .venv/bin/python -m bench.speed.evaluate                   # 500 samples, 1,000 real faces, CPU
    .venv/bin/python -m bench.speed.evaluate --samples 500 --reference 2000 --workdir /tmp/bench_eval
    .venv/bin/python -m bench.speed.evaluate --skip-copies     # only the evaluate-against-pytorch-fid part
    .venv/bin/python -m bench.speed.evaluate --only-copies     # only the copy check's cost

Set-up (not timed): the first --reference real faces of ../shared/data/anime-faces-5k.zip resized to 64x64 as the
clean stage does (data/clean/faces.npy, and the same pixels as PNG files for pytorch-fid); a course DCGAN with
random weights samples --samples images (the sample stage: JPEG files); the FID reference is computed once
(`animegan fid-reference`, timed separately). Weights: the seeded, calibrated `untrained` Inception saved as a
state dict, which our side loads as a local file and pytorch-fid finds in torch.hub's cache under its usual file
name (TORCH_HOME points into the work folder), so both use identical weights.

Timed, each in a fresh child process, same machine, same run:
  - ours:   animegan evaluate --set eval.repeats=1 (FID, KID, precision/recall/density/coverage, the copy check
            against every clean face with its calibration, AFD with MTCNN on the samples and on
            eval.afd.real_count real faces), reference read from the cache;
  - theirs: python -m pytorch_fid <samples> <reference PNGs> --device cpu (FID only; it recomputes the
            reference's features on every call).
Prints wall time of both, the ratio, each child's peak RSS (VmHWM), and both FIDs.

Copy check (each in a fresh child, peak RSS its own): pipeline.metrics.copies on 1,000 images (faces of the zip moved by
a pixel and re-encoded) against a memory-mapped faces.npy of 2,500 and of 5,000 real faces, and its calibration
(eval.copies.calibration_count = 1,000 held-out faces). The per-image search is linear in the training faces (coarse
pass) plus a constant (the aligned distance over a few candidates): the two sizes fit that line, which is extrapolated
to the course's 71,314 faces. Memory does not grow with the training set (streamed in chunks).
The figures go to bench/results/evaluate.json (--json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.common import REPO, RESULTS, SHARED_ZIP, load_average, require, run_timed, write_result, zip_faces

PFID_NAME = "pt_inception-2015-12-05-6726825d.pth"

# Runs a command's Python entry point in this child and reports its own peak RSS (a fork's ru_maxrss would
# include the parent's). The child starts in the repository root, so `bench` imports.
CHILD = """
import runpy, sys
from bench.common import peak_rss_mib
argv = {argv!r}
sys.argv = argv
code = 0
try:
    if argv[0] == "animegan":
        from stages.cli import main
        main()
    else:
        runpy.run_module(argv[0], run_name="__main__")
except SystemExit as e:
    code = e.code or 0
print(f"PEAK_MIB {{peak_rss_mib()}}", file=sys.stderr)
sys.exit(code)
"""


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and stdout of a command's entry point run in a fresh child."""
    ran = run_timed([sys.executable, "-c", CHILD.format(argv=argv)], env=env, cwd=REPO)
    peak = [line for line in ran.stderr.splitlines() if line.startswith("PEAK_MIB")][-1]
    return ran.seconds, float(peak.split()[1]), ran.stdout


COPY_CHILD = """
import json, time
import numpy as np
from bench.common import peak_rss_mib
from pipeline.metrics.copies import CopyCheck
faces = np.load({faces!r}, mmap_mode="r")
images = np.load({images!r})
check = CopyCheck(faces)
t = time.perf_counter()
calibration = check.calibrate(count=1000, quantile=0.01, seed=0, jpeg_quality=75)
calibrate_s = time.perf_counter() - t
t = time.perf_counter()
found = check.check(images, None, calibration.threshold)
check_s = time.perf_counter() - t
print(json.dumps({{"calibrate_s": calibrate_s, "check_s": check_s, "peak_mib": peak_rss_mib(),
                  "flagged": len(found.flagged)}}))
"""

TRAINING_FACES_71K = 71314


def copy_check_cost(zip_path: Path, work: Path) -> dict:
    from pipeline.metrics.copies import edit

    faces = zip_faces(zip_path, 64, 5000)
    images = np.stack([edit(f, 1, 0, 75) for f in faces[:1000]])
    np.save(work / "copy_queries.npy", images)
    rows = []
    for n in (2500, 5000):
        np.save(work / f"faces_{n}.npy", faces[:n])
        queries = str(work / "copy_queries.npy")
        code = COPY_CHILD.format(faces=str(work / f"faces_{n}.npy"), images=queries)
        ran = run_timed([sys.executable, "-c", code], cwd=REPO)
        rows.append((n, json.loads(ran.stdout.strip().splitlines()[-1])))
    (n1, a), (n2, b) = rows
    def at_71k(key: str) -> float:
        return b[key] + (b[key] - a[key]) / (n2 - n1) * (TRAINING_FACES_71K - n2)

    print(f"copy check, 1,000 images (edited training faces), load average {load_average()}:")
    for n, r in rows:
        print(f"  against {n:>6,} training faces: {r['check_s']:6.1f} s per 1,000 images, calibration (1,000 "
              f"held out) {r['calibrate_s']:6.1f} s, peak RSS {r['peak_mib']:.0f} MiB, flagged {r['flagged']}")
    print(f"  extrapolated to {TRAINING_FACES_71K:,} training faces (linear in faces): {at_71k('check_s'):.1f} s per "
          f"1,000 images, calibration {at_71k('calibrate_s'):.1f} s; peak RSS as above (streamed in chunks)")
    return {"copy_check_1000_images": {str(n): r for n, r in rows},
            "copy_check_at_71314_faces": {"check_s": at_71k("check_s"), "calibrate_s": at_71k("calibrate_s")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--reference", type=int, default=1000)
    ap.add_argument("--zip", type=Path, default=SHARED_ZIP)
    ap.add_argument("--workdir", type=Path, default=None, help="kept afterwards when given")
    ap.add_argument("--skip-copies", action="store_true", help="do not measure the copy check on its own")
    ap.add_argument("--only-copies", action="store_true", help="measure only the copy check")
    ap.add_argument("--json", type=Path, default=RESULTS / "evaluate.json", help="where the figures go")
    args = ap.parse_args()
    require(args.zip)
    if args.only_copies:
        with tempfile.TemporaryDirectory() as tmp:
            write_result(args.json, copy_check_cost(args.zip, Path(tmp)))
            return

    import torch

    from pipeline.metrics.inception import _untrained_state
    from pipeline.train.families.dcgan import Generator
    from pipeline.train.generator_file import generator_config, save_generator

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_eval."))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ANIMEGAN_PROGRESS": "0", "TORCH_HOME": str(work / "torch_home"), "PYTHONPATH": str(REPO)}
    try:
        faces = zip_faces(args.zip, 64, args.reference)
        (work / "data" / "clean").mkdir(parents=True, exist_ok=True)
        np.save(work / "data" / "clean" / "faces.npy", faces)
        ref_png = work / "reference_png"
        ref_png.mkdir(exist_ok=True)
        from PIL import Image

        for i, face in enumerate(faces):
            Image.fromarray(face).save(ref_png / f"{i}.png")
        weights = work / "torch_home" / "hub" / "checkpoints" / PFID_NAME
        weights.parent.mkdir(parents=True, exist_ok=True)
        torch.save(_untrained_state(0), weights)
        torch.manual_seed(0)
        save_generator(work / "models" / "generator.pt", Generator(100, 64, 64), generator_config("dcgan", 100, 64, 64))

        sets = [
            f"paths.{k}={work / v}"
            for k, v in {
                "clean": "data/clean", "fid_reference": "data/fid_reference", "models": "models",
                "samples": "samples", "submission": "submission.tgz", "metrics": "metrics", "plots": "plots",
            }.items()
        ] + [f"sample.count={args.samples}", "eval.repeats=1", f"eval.fid.weights={weights}",
             "eval.afd.detector=mtcnn",
             f"eval.fid.cache_dir={work / 'cache'}"]  # fmt: skip
        opts = [a for s in sets for a in ("--set", s)]
        cmd = ["animegan"]
        timed([*cmd, "sample", *opts], env)
        ref_s, ref_peak, _ = timed([*cmd, "fid-reference", *opts], env)
        ours_s, ours_peak, ours_out = timed([*cmd, "evaluate", *opts], env)
        theirs_s, theirs_peak, theirs_out = timed(
            ["pytorch_fid", str(work / "samples"), str(ref_png), "--device", "cpu"], env
        )
        ours_fid = json.loads((work / "metrics" / "eval.json").read_text())["fid"]["mean"]
        theirs_fid = float(theirs_out.split("FID:")[-1])
        print(f"machine: {os.cpu_count()} cpus, torch {torch.__version__}, load average {load_average()}")
        print(f"samples {args.samples} (64x64 JPEG q75), reference {len(faces)} real faces, untrained weights, CPU")
        print(f"fid-reference (once, cached): {ref_s:7.1f} s, peak RSS {ref_peak:.0f} MiB")
        print(f"ours   evaluate (all metrics): {ours_s:7.1f} s, peak RSS {ours_peak:.0f} MiB, FID {ours_fid:.6f}")
        print(f"pytorch-fid (FID only):        {theirs_s:7.1f} s, peak RSS {theirs_peak:.0f} MiB, FID {theirs_fid:.6f}")
        print(f"ratio pytorch-fid / ours: {theirs_s / ours_s:.2f}x; FID relative difference "
              f"{abs(ours_fid - theirs_fid) / theirs_fid:.2e}")  # fmt: skip
        print(ours_out.strip())
        figures = {"samples": args.samples, "reference": len(faces), "fid_reference_s": ref_s,
                   "fid_reference_peak_mib": ref_peak, "evaluate_s": ours_s, "evaluate_peak_mib": ours_peak,
                   "evaluate_fid": ours_fid, "pytorch_fid_s": theirs_s, "pytorch_fid_peak_mib": theirs_peak,
                   "pytorch_fid_fid": theirs_fid, "ratio": theirs_s / ours_s}  # fmt: skip
        if not args.skip_copies:
            figures |= copy_check_cost(args.zip, work)
        write_result(args.json, figures)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
