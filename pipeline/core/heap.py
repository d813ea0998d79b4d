"""Keep freed memory inside the process, so each batch's large tensors reuse it instead of being faulted in anew.

Usage:
    from pipeline.core.heap import keep_freed_memory
    keep_freed_memory()   # once, at a stage process's start (stages.cli does); True where it applied (glibc)

glibc serves every allocation above its mmap threshold (at most 32 MiB) with fresh pages from the kernel and
returns them on free, so a CPU forward pays a zero-filled page fault per 4 KiB of every large activation, on every
batch: the Inception's 299 px activations are 276 MB at batch 50. With mmap off (M_MMAP_MAX 0) they come from the
heap, and with trimming off (M_TRIM_THRESHOLD) the heap keeps what is freed for the next batch. Measured on 2 cores
(docs/metrics.md): evaluate at the course's size 559 -> 418 s with bit-equal features, the test suite 15.9 -> 11.6
minutes. The process then holds its peak memory until it exits, which a stage process does when its stage is done.
Only the allocator changes: no number computed depends on it. Elsewhere (macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import platform

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_MAX = -4
KEEP_UP_TO = 2**31 - 1  # mallopt takes an int: the heap keeps up to 2 GiB free at its top


def keep_freed_memory() -> bool:
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_UP_TO))
