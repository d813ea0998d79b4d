"""Publishing checkpoints with train.sync: seconds per publish and how long training waits for it.

Usage:
    python -m bench.speed.sync_publish [--models dcgan r3gan] [--targets folder s3] [--count 3] [--intervals 0 5]

For the course DCGAN at 64 px and R3GAN's `paper` preset at 64 px it builds a checkpoint of the real layout and
size (G, D, G's EMA, both Adam states, RNG states: what pipeline.train.loop writes), then publishes it `--count`
times through pipeline.train.sync.Publisher, as training does: the checkpoint is rewritten locally (timed: the
local save), handed to the publisher, and training goes on for each of `--intervals` seconds (a sleep standing in
for the steps between two checkpoints) before the next one; with an interval of 0 checkpoints come back to back, the
worst case. Targets: a local folder (as a mounted drive; here the same disk) and a real S3 endpoint on 127.0.0.1
(moto's server in this process, moto[server]: bench/s3_server.py, which the sync tests start too). A publish =
sha256 of the file, upload under a temporary name, read-back and sha256 of the upload, rename, pointer. Prints one
line per (model, target, interval): checkpoint MB, local save s, publish s (mean of the publishes), training's
wait per checkpoint (mean), and the load average; writes the rows to bench/results/sync_publish.json (--json).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench.common import REPO, RESULTS, load_average, write_result
from pipeline.core.config import load_params
from pipeline.core.seeding import capture_rng_state
from pipeline.train.checkpoint import save_checkpoint
from pipeline.train.families import family_for
from pipeline.train.sync import Publisher, SyncFolder

SETUPS = {
    "dcgan": ["train.model=dcgan"],
    "r3gan": ["train.model=r3gan", "train.r3gan.preset=paper", "train.loss=rpgan", "train.dcgan.critic_norm=none"],
}


def checkpoint_state(model: str) -> dict:
    """A checkpoint of the real layout: the networks, G's EMA and both optimizers' states after one step."""
    params = load_params(REPO / "params.yaml", SETUPS[model]).train
    family = family_for(params, 64, params.batch_size)
    g, d = family.build()
    opt_g, opt_d = family.optimizers(g, d, fused=None)
    for net, opt in ((g, opt_g), (d, opt_d)):
        for p in net.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()  # materialises Adam's two moments per parameter, as a trained checkpoint holds them
    ema = family.ema(g)
    return {"signature": {"train.model": model, "bench": True}, "step": 0, "G": g.state_dict(), "D": d.state_dict(),
            "G_ema": ema.module.state_dict() if ema is not None else None, "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(), "rng": capture_rng_state(), "wall_s": 0.0, "summary": None}  # fmt: skip


def bench(model: str, state: dict, url: str, work: Path, count: int, interval: float) -> dict:
    models = work / "models"
    local = models / "checkpoint.pt"
    # a fresh run folder each time
    run = SyncFolder.open(url, {"train.model": model, "train.loss": "bench", "bench": time.time_ns()})
    publisher = Publisher(run, models / ".sync", None, {"signature": state["signature"]})
    saves = []
    for step in range(1, count + 1):
        state["step"] = step
        t0 = time.perf_counter()
        save_checkpoint(local, state)
        saves.append(time.perf_counter() - t0)
        publisher.publish(local, step)
        time.sleep(interval)
    waited_before_close = publisher.waited_s
    publisher.close()
    assert publisher.published == count, publisher.failed
    run.fs.rm(run.path, recursive=True)  # moto keeps objects in memory: 1.3 GB per r3gan run otherwise
    return {
        "mb": local.stat().st_size / 1e6,
        "save_s": statistics.mean(saves),
        "publish_s": statistics.mean(publisher.publish_s),
        # training waits at checkpoints 2..count; the last upload overlaps the end of the run (generator.pt)
        "wait_s": waited_before_close / max(count - 1, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    ap.add_argument("--targets", nargs="+", default=["folder", "s3"], choices=["folder", "s3"])
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--intervals", nargs="+", type=float, default=[0.0, 5.0])
    ap.add_argument("--json", type=Path, default=RESULTS / "sync_publish.json", help="where the rows go")
    args = ap.parse_args()
    server = None
    if "s3" in args.targets:
        from bench.s3_server import CREDENTIALS, S3Server

        os.environ.update(CREDENTIALS)
        server = S3Server().start()
        os.environ["FSSPEC_S3_ENDPOINT_URL"] = server.endpoint
        import fsspec.config

        # moto assembles a 630 MB multipart upload slower than botocore's 60 s read timeout on a loaded machine; the
        # retried completion then fails (a real store answers in seconds)
        fsspec.config.conf["s3"] = {"endpoint_url": server.endpoint, "config_kwargs": {"read_timeout": 900}}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.count} publishes each")
    head = ("model", "target", "interval s", "MB", "save s", "publish s", "wait s")
    print(f"{head[0]:6} {head[1]:6} {head[2]:>10} {head[3]:>7} {head[4]:>7} {head[5]:>9} {head[6]:>7}  loadavg")
    rows = []
    try:
        for model in args.models:
            state = checkpoint_state(model)
            for target in args.targets:
                for interval in args.intervals:
                    with tempfile.TemporaryDirectory(prefix="sync_bench_") as tmp:
                        url = str(Path(tmp) / "drive") if target == "folder" else server.url
                        r = bench(model, state, url, Path(tmp), args.count, interval)
                    load = load_average()
                    print(f"{model:6} {target:6} {interval:10.0f} {r['mb']:7.1f} {r['save_s']:7.2f} "
                          f"{r['publish_s']:9.2f} {r['wait_s']:7.2f}  {load}", flush=True)  # fmt: skip
                    rows.append({"model": model, "target": target, "interval_s": interval, **r, "load": load})
            del state
    finally:
        if server is not None:
            server.stop()
    write_result(args.json, {"torch": torch.__version__, "threads": torch.get_num_threads(), "count": args.count,
                             "rows": rows})


if __name__ == "__main__":
    main()
