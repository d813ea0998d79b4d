"""What a snapshot scored while training costs (train.snapshot_kimg), and its share of the training time: measured on
this CPU, estimated from FLOPs for a T4.

Usage:
    python -m bench.speed.snapshot_cost                          # 32 px course DCGAN, 500 images every 50 kimg
    python -m bench.speed.snapshot_cost --image-size 64 --count 500 --kimg 50 --faces 1500 --train-steps 20

A project in a temporary folder: the shared 5k real faces (or generated cartoon faces with --cartoon) at
--image-size, its FID reference (the untrained Inception: pytorch-fid's weights cannot be fetched here; same
architecture, same FLOPs) and its anime detector, both by their stages. Measured: loading the scorer once per run
(pipeline.metrics.snapshot_scorer), then per snapshot: the course DCGAN drawing --count images, their Inception
features, KID against the reference's pool, AFD (the detector), and KID against a 10,000-face pool (eval.kid's
default, random features of the same shape: its cost depends on shapes only); and the training loop's images/s
(train_gan, the course DCGAN at --image-size, snapshots off). share = snapshot / (kimg x 1000 / images/s + snapshot).
T4: FLOPs counted per image (Inception at 299 px, G forward, detector; training per real image by
bench.models.flops), share = snapshot FLOPs / (training FLOPs + snapshot FLOPs), i.e. equal utilisation for both, and
seconds at --t4-utilisation of its 8.1 fp32 TFLOP/s (eval runs fp32; a T4 has no bf16). KID runs on the CPU in
float64 numpy whatever the device: its seconds are added as measured here.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import REPO, RESULTS, SHARED_ZIP, load_average, write_result, zip_faces
from bench.models.flop_count import flops
from bench.models.plain_step import PlainStep
from pipeline.core.config import load_params
from pipeline.data.cartoon import cartoon_faces
from pipeline.metrics.inception import PoolFeatures, build_fid_inception, extract_features
from pipeline.metrics.kid import KidReference
from pipeline.metrics.resources import Draw
from pipeline.metrics.scores import get_metric
from pipeline.metrics.snapshot_scorer import load_snapshot_scorer
from pipeline.train.families.dcgan import Generator
from pipeline.train.sampling import to_uint8

T4_FP32_TFLOPS = 8.1


def project(root: Path, args: argparse.Namespace):
    """Clean faces, FID reference and anime detector of a small project under root; its params."""
    from stages import detector, fid_reference

    size = args.image_size
    faces = cartoon_faces(args.faces, size, seed=0) if args.cartoon else zip_faces(SHARED_ZIP, size, args.faces)
    (root / "clean").mkdir(parents=True)
    np.save(root / "clean" / "faces.npy", faces)
    names = ("clean", "fid_reference", "copy_index", "models", "samples", "metrics", "plots", "detector")
    params = load_params(REPO / "params.yaml", [f"paths.{k}={root / k}" for k in names] + [
        f"paths.submission={root / 'submission.tgz'}", f"data.image_size={size}", "device=cpu",
        "eval.fid.weights=untrained", f"eval.fid.cache_dir={root / 'cache'}", "train.snapshot_kimg=50",
        f"train.snapshot_count={args.count}", "detector.epochs=1", "detector.max_train_faces=1000",
        f"train.max_steps={args.train_steps}", "train.log_every=1000", "train.checkpoint_every=1000",
    ])  # fmt: skip
    fid_reference.execute(params)
    detector.execute(params)
    return params


def training_gflops(image_size: int, batch: int = 2) -> float:
    """GFLOPs per real image of one course DCGAN training step (bench.models.flops counts it so, on the meta device)."""
    meta = torch.device("meta")
    step = PlainStep("dcgan", image_size, meta, False, False, None, penalties=False)
    real = torch.empty(batch, 3, image_size, image_size, device=meta)
    return flops(lambda: step(real)) / batch / 1e9


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def snapshot_seconds(params, args: argparse.Namespace) -> dict[str, float]:
    """The scorer's load (once per run) and one snapshot's parts, on the CPU."""
    scorer, load_s = timed(lambda: load_snapshot_scorer(params, torch.device("cpu")))
    torch.manual_seed(0)
    g = Generator(100, 64, args.image_size).eval()
    z = torch.randn(args.count, 100)
    with torch.no_grad():
        images, draw_s = timed(lambda: np.concatenate([to_uint8(g(c)) for c in z.split(250)]))
    res = scorer.resources
    features, features_s = timed(lambda: extract_features(res.backbone, images, res.settings.fid.batch_size))
    draw = Draw(1, images, res, _features=features)
    get_metric("kid").score(draw, res)  # the first snapshot computes KID's reference side, once per run
    _, kid_s = timed(lambda: get_metric("kid").score(draw, res))
    _, afd_s = timed(lambda: get_metric("afd").score(draw, res))
    pool = np.random.default_rng(0).standard_normal((10000, 2048)).astype(np.float32)
    kid = KidReference(pool, res.settings.kid.subsets, res.settings.kid.subset_size, res.settings.kid.seed)
    kid.score(features)  # the reference side, once per run
    _, kid_10k_s = timed(lambda: kid.score(features))
    _, scorer_s = timed(lambda: scorer(images))
    return {"scorer_load_s": load_s, "draw_s": draw_s, "features_s": features_s, "kid_s": kid_s, "afd_s": afd_s,
            "kid_pool_10k_s": kid_10k_s, "scorer_call_s": scorer_s,
            "snapshot_s": draw_s + scorer_s, "snapshot_pool_10k_s": draw_s + scorer_s - kid_s + kid_10k_s}  # fmt: skip


def training_images_per_s(params) -> float:
    from pipeline.core.distributed import init_distributed
    from pipeline.train.loop import TrainPaths, train_gan

    faces = np.load(Path(params.paths.clean) / "faces.npy")
    models = Path(params.paths.models)
    train = params.train.model_copy(update={"snapshot_kimg": 0.0})
    paths = TrainPaths(models / "checkpoint.pt", models / "generator.pt")
    return float(train_gan(faces, train, paths, init_distributed("cpu"))["images_per_s"])


def t4_estimate(args: argparse.Namespace, kid_s: float) -> dict[str, float]:
    """FLOPs per snapshot and per training interval, at --image-size and at 64 px."""
    out: dict[str, float] = {}
    inception = PoolFeatures(build_fid_inception()).eval()
    with torch.no_grad():
        inception_gf = flops(lambda: inception(torch.zeros(1, args.image_size, args.image_size, 3,
                                                           dtype=torch.uint8))) / 1e9  # fmt: skip
    for size in sorted({args.image_size, 64}):
        g = Generator(100, 64, size).eval()
        with torch.no_grad():
            g_gf = flops(lambda g=g: g(torch.zeros(1, 100))) / 1e9
        snap_tf = args.count * (inception_gf + g_gf) / 1e3  # the O-Net at 48 px adds under 0.1%
        train_tf = args.kimg * 1000 * training_gflops(size) / 1e3
        t4_s = snap_tf / (T4_FP32_TFLOPS * args.t4_utilisation) + kid_s
        train_s = train_tf / (T4_FP32_TFLOPS * args.t4_utilisation)
        out |= {f"{size}px_snapshot_tflop": snap_tf, f"{size}px_train_interval_tflop": train_tf,
                f"{size}px_flop_share": snap_tf / (snap_tf + train_tf), f"{size}px_t4_snapshot_s": t4_s,
                f"{size}px_t4_share": t4_s / (t4_s + train_s)}  # fmt: skip
    out["inception_gflop_per_image"] = inception_gf
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--count", type=int, default=500, help="train.snapshot_count")
    ap.add_argument("--kimg", type=float, default=50.0, help="train.snapshot_kimg")
    ap.add_argument("--faces", type=int, default=1500, help="faces of the project (the reference, the detector)")
    ap.add_argument("--train-steps", type=int, default=20, help="steps of batch 64 timed for images/s")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cartoon", action="store_true", help="generated cartoon faces instead of the shared 5k zip")
    ap.add_argument("--t4-utilisation", type=float, default=0.5, help="share of the T4's fp32 peak reached")
    ap.add_argument("--out", type=Path, default=RESULTS / "snapshot_cost.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        params = project(Path(tmp), args)
        cpu = snapshot_seconds(params, args)
        ips = training_images_per_s(params)
    train_s = args.kimg * 1000 / ips
    cpu |= {"train_images_per_s": ips, "train_interval_s": train_s,
            "share": cpu["snapshot_s"] / (train_s + cpu["snapshot_s"]),
            "share_pool_10k": cpu["snapshot_pool_10k_s"] / (train_s + cpu["snapshot_pool_10k_s"])}  # fmt: skip
    result = {"image_size": args.image_size, "count": args.count, "kimg": args.kimg, "threads": args.threads,
              "faces": "cartoon" if args.cartoon else "shared 5k", "load_before": load_before,
              "load_after": load_average(), "cpu": cpu, "t4": t4_estimate(args, cpu["kid_pool_10k_s"]),
              "t4_utilisation": args.t4_utilisation}  # fmt: skip
    for part in ("cpu", "t4"):
        print(part, "  ".join(f"{k} {v:.4g}" for k, v in result[part].items()))
    write_result(args.out, result)


if __name__ == "__main__":
    main()
