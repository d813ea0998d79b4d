"""What the benches share: where things are, the shared real faces, timing, and writing results.

Usage (every bench runs from the repository root as a module: `.venv/bin/python -m bench.<room>.<script>`):
    from bench.common import REPO, RESULTS, SHARED_ZIP, load_average, run_timed, write_result, zip_faces
    faces = zip_faces(SHARED_ZIP, size=64, count=200)   # uint8 (200, 64, 64, 3), resized as the clean stage does
    ran = run_timed([sys.executable, "-m", "stages.cli", "sample"], cwd=REPO)   # ran.code, ran.seconds, ran.stdout
    write_result(RESULTS / "clean.json", {"rows": rows})  # JSON, with the command, the time and the load average

Results are JSON, one file per bench in bench/results/ (the older .txt and .md records stay there as they were
written). `write_result` adds "bench" (the command that made the figures, `python -m bench...` and its arguments),
"when" (UTC) and "load_average" (1, 5 and 15 minutes, when written) unless the figures hold them already.
"""

from __future__ import annotations

import io
import json
import os
import re
import resource
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
# The shared data folder beside the checkout (CI and the worktrees have ../shared, some clones ../../shared).
SHARED = next((f / "shared" for f in REPO.parents if (f / "shared" / "data").is_dir()), REPO.parent / "shared")
SHARED_ZIP = SHARED / "data" / "anime-faces-5k.zip"  # 5,000 real faces in the course's layout (faces/<n>.jpg)
SHARED_ZIP_SHA256 = "d62dcda397fa5fbda34e53d9ff5eddd7aeef20f6d93a14c8ca1fd1322689d870"
# faces.npy that clean makes from SHARED_ZIP with params.yaml's data settings (64 px, lanczos, min_side 32; all 5,000
# kept): tests/data/test_clean_hash.py checks it under the lock's Pillow, bench.install.pillow_hash and
# bench.install.colab_case under others.
SHARED_FACES_SHA256 = "3c0c84ec23b17f2e342e1f2f5c53a9232d09e6dddd12c5e65a3d060264b60481"
CACHE = Path.home() / ".cache" / "animegan-bench"  # large made-up inputs (bench.course.faces), never committed
LOGS = Path("/var/tmp/animegan-bench-logs")  # full logs of the install reproductions, outside the repository


def require(path: Path, what: str = "the shared 5k zip") -> Path:
    """`path` when it is a file; otherwise stop the bench with one line saying what is missing."""
    if not Path(path).is_file():
        sys.exit(f"{what} not found at {path} (pass its path as an option)")
    return Path(path)


def zip_faces(zip_path: Path, size: int, count: int | None = None) -> np.ndarray:
    """The first `count` (all when None) faces of a zip, in numeric order, resized to size x size with Lanczos as
    clean resizes them: uint8 (count, size, size, 3)."""
    with zipfile.ZipFile(zip_path) as z:
        names = sorted((n for n in z.namelist() if n.lower().endswith(".jpg")), key=lambda n: int(Path(n).stem))
        out = []
        for n in names[:count]:
            with Image.open(io.BytesIO(z.read(n))) as im:
                out.append(np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)))
    return np.stack(out)


# --- timing ---


@dataclass(frozen=True)
class Ran:
    code: int
    seconds: float
    stdout: str
    stderr: str


def run_timed(
    cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, log: Path | None = None,
    tee: bool = False, timeout: float | None = None, check: bool = True,
) -> Ran:  # fmt: skip
    """Run `cmd` and time it (wall seconds). Output is captured, or with `log` written there (stderr into stdout;
    `tee` also echoes it here, line by line). A run past `timeout` is killed and reads as exit code 124. With `check`,
    a failed command stops the bench with the end of its output."""
    start = time.monotonic()
    if log is None:
        try:
            done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
            code, out, err = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired as e:
            code, out, err = 124, _text(e.stdout), _text(e.stderr)
    else:
        print("+", " ".join(map(str, cmd)), flush=True)
        code, out, err = _run_logged(cmd, cwd, env, Path(log), tee, timeout), "", ""
    ran = Ran(code, time.monotonic() - start, out, err)
    if check and code != 0:
        tail = f"{out[-3000:]}\n{err[-3000:]}" if log is None else f"see {log}"
        sys.exit(f"{' '.join(map(str, cmd[:4]))} ... failed ({code}):\n{tail}")
    return ran


def _run_logged(cmd: list[str], cwd: Path | None, env: dict | None, log: Path, tee: bool, timeout: float | None) -> int:
    with open(log, "w") as out:
        if not tee:
            try:
                return subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                      timeout=timeout).returncode  # fmt: skip
            except subprocess.TimeoutExpired:
                return 124
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            out.write(line)
            sys.stdout.write(line)
        return proc.wait()


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else data or ""


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, e.g. "0.7 0.8 0.8": the machine may be shared, figures move with it."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def peak_rss_mib() -> float:
    """This process's own peak resident memory (VmHWM). A child's ru_maxrss would carry its parent's RSS at fork."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class StepClock:
    """A training log (pipeline.train.loop's TrainLog) that notes when each step ends: run with train.log_every=1."""

    def __init__(self) -> None:
        self.times: dict[int, float] = {}

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.times[step] = time.perf_counter()

    def grid(self, name: str, images: np.ndarray) -> None:
        pass


# --- results ---


def command() -> str:
    """How this bench was started, as one would type it again: `python -m bench.<room>.<script> ARGS`."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = spec.name if spec is not None else Path(sys.argv[0]).name
    return " ".join(["python -m", name, *sys.argv[1:]])


def write_result(path: Path, figures: dict) -> Path:
    """Write a bench's figures as JSON to `path`, with "bench", "when" and "load_average" first unless given."""
    record = {
        "bench": command(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": load_average(),
        **figures,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=_plain) + "\n")
    print(f"wrote {path}")
    return path


def _plain(value: object) -> object:
    """numpy's scalars and arrays as Python numbers and lists, paths as text: what json cannot write itself."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
