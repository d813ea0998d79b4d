"""Write a .npy array one row at a time, so memory stays flat however many rows there are.

Usage:
    from pipeline.core.npy_stream import NpyRowWriter
    with NpyRowWriter(Path("faces.npy"), row_shape=(64, 64, 3)) as out:
        for face in faces:              # each a uint8 (64, 64, 3) array
            out.append(face)
    out.count, out.sha256               # rows written; sha256 of the array's raw bytes (C order)
    np.load("faces.npy", mmap_mode="r") # -> (count, 64, 64, 3) uint8

The header is written first with a zero row count and rewritten in place with the final count on close. NumPy
pads the header with room for 21 digits of the first axis, so its length never changes and rows never move.
The file is complete only after a clean close; write it into a temporary folder (see pipeline.core.atomic).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from types import TracebackType

import numpy as np


class NpyRowWriter:
    def __init__(self, path: Path, row_shape: tuple[int, ...], dtype: np.dtype | type = np.uint8) -> None:
        self.path = Path(path)
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        self.count = 0
        self._hash = hashlib.sha256()
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._header_len = len(self._header(0))
        self._file.write(self._header(0))

    def append(self, row: np.ndarray) -> None:
        if row.shape != self.row_shape or row.dtype != self.dtype:
            raise ValueError(f"row {row.shape} {row.dtype} does not match {self.row_shape} {self.dtype}")
        data = np.ascontiguousarray(row).tobytes()
        self._file.write(data)
        self._hash.update(data)
        self.count += 1

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def close(self) -> None:
        if self._file.closed:
            return
        header = self._header(self.count)
        if len(header) != self._header_len:  # cannot happen with NumPy's growth padding; never corrupt silently
            raise RuntimeError(f"npy header changed length ({self._header_len} -> {len(header)})")
        self._file.seek(0)
        self._file.write(header)
        self._file.close()

    def __enter__(self) -> NpyRowWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._file.close()

    def _header(self, count: int) -> bytes:
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            buf,
            {
                "descr": np.lib.format.dtype_to_descr(self.dtype),
                "fortran_order": False,
                "shape": (count, *self.row_shape),
            },
        )
        return buf.getvalue()
