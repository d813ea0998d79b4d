"""Progress bars for long work, the same everywhere.

Usage:
    from pipeline.core.progress import progress
    for item in progress(items, desc="clean", unit="img"):
        ...
    with progress(total=n_bytes, desc="download", unit="B", unit_scale=True) as bar:
        bar.update(len(chunk))

Bars go to stderr. Set ANIMEGAN_PROGRESS=0 to turn them off (tests and CI logs do).
"""

from __future__ import annotations

import os
from typing import Any

from tqdm.auto import tqdm


def progress_enabled() -> bool:
    return os.environ.get("ANIMEGAN_PROGRESS", "1") != "0"


def progress(iterable: Any = None, **kwargs: Any) -> tqdm:
    kwargs.setdefault("mininterval", 1.0)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, disable=not progress_enabled(), **kwargs)
