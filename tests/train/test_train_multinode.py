"""Two "nodes" under torchrun's c10d rendezvous: the README's multi-node command, on loopback.

Two launchers (`torchrun --nnodes=2 --nproc_per_node=1 --rdzv_backend=c10d --rdzv_endpoint=127.0.0.1:PORT`) on
this machine stand in for two nodes, gloo on CPU. The run must equal a 2-process single-node run bit for bit, keep
both ranks in sync (the training loop's per-checkpoint digest check), leave rank 1's output folders empty (see
ddp_worker.py), and resume across a second 2-node launch exactly as a single run would.
"""

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import SUBPROCESS_ENV, assert_same_tensors, load_state, tiny_params, write_faces

WORKER = Path(__file__).with_name("ddp_worker.py")
RUN_KEYS = ("G", "D", "G_ema", "opt_g", "opt_d", "step", "epoch", "step_in_epoch", "signature", "rng")

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def two_nodes(root: Path, *overrides: str) -> None:
    """Both launchers at once, as two machines would start them; each prints its own log."""
    rdzv = ["--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{free_port()}",
            f"--rdzv_id=animegan-{root.name}", "--max_restarts=0"]  # fmt: skip
    launchers = [
        subprocess.Popen(torchrun(*rdzv, str(WORKER), str(root), *overrides), env=SUBPROCESS_ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in launchers]
    for p, out in zip(launchers, outputs, strict=True):
        assert p.returncode == 0, out[-3000:]


def one_node(root: Path, *overrides: str) -> None:
    cmd = torchrun("--standalone", "--nproc_per_node=2", str(WORKER), str(root), *overrides)
    done = subprocess.run(cmd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def digests(root: Path, rank: int) -> list[tuple[str, str]]:
    log = (root / f"rank{rank}.log").read_text()
    return re.findall(r"step (\d+): rank \d weights (\w+), equal on all 2 ranks", log)


def test_two_nodes_equal_one_node_with_two_processes_and_resume_across_launches(tmp_path, faces):
    nodes, single = tmp_path / "nodes", tmp_path / "single"
    for root in (nodes, single):
        write_faces(tiny_params(root, "train.max_steps=4"), faces)

    two_nodes(nodes, "train.max_steps=2")  # a first 2-node job stops at step 2 (a time limit, say) ...
    assert load_state(nodes / "models" / "checkpoint.pt")["step"] == 2
    two_nodes(nodes, "train.max_steps=4")  # ... and the next one resumes from its checkpoint
    one_node(single, "train.max_steps=4")

    assert not [p for p in (nodes / "rank1").rglob("*") if p.is_file()]  # only global rank 0 wrote
    a, b = load_state(nodes / "models" / "checkpoint.pt"), load_state(single / "models" / "checkpoint.pt")
    for key in RUN_KEYS:
        assert_same_tensors(a[key], b[key], key)
    assert_same_tensors(load_state(nodes / "models" / "generator.pt"), load_state(single / "models" / "generator.pt"))
    # in sync: both ranks checked the same weight digests at steps 2 (first launch) and 4 (the resumed one)
    assert digests(nodes, 0) == digests(nodes, 1) and [s for s, _ in digests(nodes, 0)] == ["2", "4"]
    assert digests(nodes, 0) == digests(single, 0)
