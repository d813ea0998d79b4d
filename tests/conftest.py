"""Shared test settings (no progress bars, no network, CPU only) and how `make test` spreads files over processes."""

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.core.heap import keep_freed_memory

os.environ.setdefault("ANIMEGAN_PROGRESS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# The commands tests start write Python's bytecode caches as on a user's machine: this machine's
# PYTHONDONTWRITEBYTECODE=1 hid that they changed DVC's code dependencies (.dvcignore now ignores them).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


# `make test` runs test files in several pytest-xdist processes (--dist loadfile). Each runs torch on one thread, and
# so do the commands its tests start: on a small machine the processes would otherwise fight over the same cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# Test processes allocate as the stage commands do (stages.cli): freed memory stays for the next large tensor.
keep_freed_memory()


# The files that take longest, each a whole pipeline on CPU, start first and in this order: test_demo.py trains the
# demo workspace that test_share_runs.py then finds cached (it waits on a lock meanwhile, tests/demo_workspace.py).
LONGEST = ("tests/test_demo.py", "tests/train/test_sync_repro.py", "tests/notebooks/test_notebook.py",
           "tests/share/test_share_runs.py")  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The files in LONGEST, then the other files with slow tests, then the rest (with --no-loadscope-reorder,
    xdist hands out files in this order): no long file is left to start when the other processes run out of work."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> tuple[int, int]:
        name = item.path.relative_to(config.rootpath).as_posix()
        return (0, LONGEST.index(name)) if name in LONGEST else (1 if item.path in slow_files else 2, 0)

    items.sort(key=rank)  # stable: within a rank, the collection order


@pytest.fixture(scope="module")
def module_tmp(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Path]]:
    """tmp_path_factory.mktemp for a module's fixtures; the folders go when the module is done, unless one of its tests
    failed (what tmp_path_retention_policy = "failed" does for each test's tmp_path). The whole suite left ~1.8 GB
    behind until it ended, and CI's disk once filled up mid-run."""
    made: list[Path] = []
    failed_before = request.session.testsfailed

    def mktemp(name: str) -> Path:
        made.append(tmp_path_factory.mktemp(name))
        return made[-1]

    yield mktemp
    if request.session.testsfailed == failed_before:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
