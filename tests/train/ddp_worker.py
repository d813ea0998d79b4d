"""Run by torchrun in test_train_ddp: the train stage in one DDP process (gloo, CPU).

Usage: python -m torch.distributed.run --standalone --nproc_per_node=2 tests/train/ddp_worker.py ROOT [--set k=v ..]

Test harness only: rank r > 0 is pointed at ROOT/rank<r>/ for every output (models, metrics, plots) so that the
test can check it wrote nothing there, and each rank's log lines from pipeline.train.loop go to ROOT/rank<r>.log.
"""

import logging
import os
import sys
from pathlib import Path

import torch

from pipeline.core.config import load_params
from stages import train as train_stage

torch.set_num_threads(1)
root = Path(sys.argv[1])
rank = int(os.environ["RANK"])
overrides = [a.split("=", 1)[1] if a.startswith("--set=") else a for a in sys.argv[2:]]
if rank > 0:
    for key in ("models", "metrics", "plots"):
        overrides.append(f"paths.{key}={root / f'rank{rank}' / key}")
handler = logging.FileHandler(root / f"rank{rank}.log")
logging.getLogger("pipeline").addHandler(handler)
logging.getLogger("pipeline").setLevel(logging.INFO)
train_stage.execute(load_params(root / "params.yaml", overrides))
