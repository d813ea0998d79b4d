"""Start N local processes of one function for DDP through torch's own launcher, as `torchrun --standalone` does.

Usage:
    from pipeline.core.launch import process_count, launch_local, under_launcher
    count = 1 if under_launcher() else process_count(params.train.processes, params.device)  # UserError: one line
    results = launch_local(train_one_rank, (params, started), count)   # [rank 0's return value, rank 1's, ...]

process_count turns the `processes` setting into a number: N as given; `auto` is every visible CUDA GPU when the
device is CUDA, else 1 (several processes on one CPU or on MPS gain nothing). More processes than visible GPUs on
CUDA, or several with a device that names one GPU (cuda:1) or MPS, is a UserError before anything starts.

launch_local runs fn(*args) in `count` fresh processes (spawned: nothing of this process's CUDA state is inherited)
under torch.distributed's elastic agent with a c10d rendezvous on localhost, which sets RANK, LOCAL_RANK,
WORLD_SIZE, MASTER_ADDR and MASTER_PORT in each: pipeline.core.distributed.init_distributed then joins them with
env://, exactly as under torchrun. Each process logs as this one does (its root level and format; ranks above 0
warnings only) and, unless OMP_NUM_THREADS is set, runs torch on one thread as torchrun's processes do. A UserError
in any process stops them all and is raised here with that process's message; any other failure is a bug and
raises torch's ChildFailedError, which names the failing rank. Ctrl-C stops every process (KeyboardInterrupt here;
the processes ignore SIGINT themselves and are ended by the launcher, so none prints a traceback).
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.core.device import Machine, choose_device, probe
from pipeline.core.errors import UserError

log = logging.getLogger(__name__)

# the agent's own lines: its config, and after a failure the SIGTERMs it sends and a traceback of its own wait (the
# failure itself is raised: a UserError with its line, or ChildFailedError naming the rank and its traceback)
LAUNCHER_LOGGERS = ("torch.distributed.elastic", "torch.distributed.launcher", "torch.multiprocessing")


def under_launcher(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process was started by torchrun or launch_local (WORLD_SIZE is set): then never launch again."""
    return "WORLD_SIZE" in (os.environ if environ is None else environ)


def process_count(setting: int | str, device_setting: str, machine: Machine | None = None) -> int:
    """How many processes `processes: setting` means with `device: device_setting` on this machine."""
    if setting != "auto" and int(setting) == 1:  # the default: no need to look at the GPUs
        return 1
    machine = machine or probe()
    wants_cuda = device_setting.startswith("cuda") or (device_setting == "auto" and bool(machine.gpus))
    if setting == "auto":
        if not wants_cuda or ":" in device_setting:
            return 1
        return max(len(machine.gpus), 1)
    count = int(setting)
    if wants_cuda and count > len(machine.gpus):
        raise UserError(f"train.processes: {count} processes need {count} CUDA GPUs, but {len(machine.gpus)} "
                        f"{'is' if len(machine.gpus) == 1 else 'are'} visible here: set train.processes to at "
                        "most that (auto: every visible GPU), or device: cpu")  # fmt: skip
    if device_setting.startswith("cuda:"):
        raise UserError(f"device: {device_setting} names one GPU, but train.processes: {count} starts a process per "
                        "GPU: set device: cuda (or auto)")  # fmt: skip
    if choose_device(device_setting, machine).type == "mps":
        raise UserError("train.processes: MPS runs one process; set train.processes: 1 (or device: cpu)")
    return count


def launch_local(fn: Callable[..., Any], args: tuple[Any, ...], count: int) -> list[Any]:
    """fn(*args) in `count` DDP processes on this machine; their return values in rank order (see the docstring).
    fn and args must pickle (a module-level function; plain data or pydantic models)."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    root = logging.getLogger()
    fmt = root.handlers[0].formatter._fmt if root.handlers and root.handlers[0].formatter else None
    threads = None if "OMP_NUM_THREADS" in os.environ else 1
    with tempfile.TemporaryDirectory(prefix="animegan-launch-") as reports, _quiet(LAUNCHER_LOGGERS):
        config = LaunchConfig(
            min_nodes=1, max_nodes=1, nproc_per_node=count, run_id=f"animegan-{uuid.uuid4().hex}",
            rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,  # as torchrun --standalone
            logs_specs=DefaultLogsSpecs(log_dir=str(Path(reports) / "agent")),  # its files go with the folder
        )  # fmt: skip
        log.info("starting %d training processes (train.processes)", count)
        try:
            results = elastic_launch(config, _one_process)(fn, args, reports, root.level, fmt, threads)
        except ChildFailedError:
            message = _first_user_error(Path(reports), count)
            if message is None:
                raise
            raise UserError(message) from None
        except SignalException:
            raise KeyboardInterrupt from None
    return [results[rank] for rank in range(count)]


def _one_process(fn: Callable[..., Any], args: tuple[Any, ...], reports: str, level: int, fmt: str | None,
                 threads: int | None) -> Any:  # fmt: skip
    """One launched process: log as the launcher does, run fn; a UserError is left for the launcher to raise."""
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the launcher too, which stops every process
    rank = int(os.environ["RANK"])
    logging.basicConfig(level=level if rank == 0 else max(level, logging.WARNING), format=fmt)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return fn(*args)
    except UserError as e:
        Path(reports, f"rank{rank}.txt").write_text(str(e), encoding="utf-8")
        raise SystemExit(2) from None  # a failed process: the agent stops the others at once


def _first_user_error(reports: Path, count: int) -> str | None:
    for rank in range(count):
        path = reports / f"rank{rank}.txt"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return None


@contextmanager
def _quiet(names: tuple[str, ...]) -> Iterator[None]:
    """The launcher's own log lines off for the block (see LAUNCHER_LOGGERS): its modules' loggers set their own
    levels, so each existing one below those names is quietened, not only the parents."""
    existing = [name for name in logging.root.manager.loggerDict if name.startswith(tuple(f"{n}." for n in names))]
    loggers = [logging.getLogger(name) for name in [*names, *existing]]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
