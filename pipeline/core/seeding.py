"""Seeds and RNG state: every random draw of training is a function of (seed, purpose, counters).

Usage:
    from pipeline.core.seeding import derive_seed, seeded_generator, capture_rng_state, restore_rng_state
    g = seeded_generator(derive_seed(seed, NOISE, step, rank), device)   # a fresh torch.Generator
    state = capture_rng_state()          # python, numpy, torch CPU (and every CUDA device): plain types
    restore_rng_state(state)

Drawing latents and permutations from generators re-seeded per step/epoch (instead of one long stream) makes a
resumed run draw exactly what an uninterrupted one would, on any number of ranks. The global RNGs are still
seeded and checkpointed, for any library code that uses them.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

# purposes: keep the numbers stable, they are part of what makes a run reproducible
INIT, NOISE, ORDER, GRID, FLIP, SNAPSHOT, AUGMENT = 0, 1, 2, 3, 4, 5, 6


def derive_seed(*keys: int) -> int:
    """A 63-bit seed that depends on every key (SeedSequence hashing: nearby keys give unrelated streams)."""
    words = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def seeded_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng_state() -> dict[str, Any]:
    """Every global RNG state, as types torch.load(weights_only=True) accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": _to_lists(random.getstate()),
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_to_tuples(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(x: Any) -> Any:
    return [_to_lists(v) for v in x] if isinstance(x, tuple | list) else x


def _to_tuples(x: Any) -> Any:
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x
