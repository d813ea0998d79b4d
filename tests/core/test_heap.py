"""keep_freed_memory: a freed large array's memory stays in the process for the next one instead of going back to
the kernel (and coming back as fresh zero-filled pages); every stage command runs with it."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# A fresh process allocates and fills a 256 MB array, frees it, and reports how much of it stays resident.
RESIDENT_AFTER_FREE = """
import os, sys
import numpy as np
sys.path.insert(0, {repo!r})
from pipeline.core.heap import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = resident()
np.ones(1 << 25)  # 256 MB of float64, freed at once
print(applied, resident() - before)
"""

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


def resident_after_free(mode: str) -> tuple[str, int]:
    code = RESIDENT_AFTER_FREE.format(repo=str(REPO))
    out = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, check=True).stdout
    applied, kept = out.split()
    return applied, int(kept)


def test_a_freed_large_array_stays_in_the_process_for_the_next_one():
    size = 1 << 28
    applied, kept = resident_after_free("keep")
    assert applied == "True"
    assert kept > 0.9 * size  # resident: the next allocation reuses these pages, no kernel zero-fill
    _, default_kept = resident_after_free("default")  # glibc's default: unmapped on free, fresh pages next time
    assert default_kept < 0.1 * size


def test_stage_commands_run_with_freed_memory_kept(monkeypatch):
    import stages.cli as cli

    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(True))
    cli.run_guarded(lambda: None)
    assert calls == [True]
