"""What the install reproductions run inside the Python under test, and read back from what it printed.

Usage:
    from bench.install.probes import CLEAN, VERSIONS, pytest_counts, versions_from
    out = subprocess.run([py, "-c", VERSIONS], capture_output=True, text=True).stdout
    versions_from(out)                   # {"python": "3.13.5", "torch": "2.14.1", ...}
    pytest_counts(Path("make-test.log"))  # {"passed": 465, "failed": 0, ..., "summary": "465 passed in ..."}
    subprocess.run([py, "-c", CLEAN, "raw/faces", "clean"], ...)   # prints clean's decoder versions and sha256

Used by bench.install.debian13, make_test_here, colab_case and pillow_hash.
"""

from __future__ import annotations

import re
from pathlib import Path

PACKAGES_REPORTED = ("torch", "torchvision", "numpy", "scipy", "pillow", "pydantic")
VERSIONS = (  # run with `python -c` in the venv under test; versions_from() reads its output
    "import sys, importlib.metadata as m; "
    "print(sys.version.split()[0]); "
    f"[print(m.version(p)) for p in {PACKAGES_REPORTED!r}]"
)


def versions_from(output: str) -> dict[str, str]:
    """{"python": ..., "torch": ..., ...} from VERSIONS' output; {"raw": [...]} when it is not one line each."""
    found, names = output.split(), ["python", *PACKAGES_REPORTED]
    return dict(zip(names, found, strict=True)) if len(found) == len(names) else {"raw": found}


# Runs clean on an extracted folder with params.yaml's data settings in the Python under test; prints one JSON line
# with its decoder versions, the faces kept and faces.npy's sha256 (bench.common.SHARED_FACES_SHA256 on the shared zip).
CLEAN = """
import json, sys, time
from pathlib import Path
from pipeline.data.clean import clean_faces, decoder_versions
src, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir()
t = time.monotonic()
r = clean_faces(src, out, image_size=64, min_side=32, max_pixels=4096 * 4096, resample="lanczos")
print(json.dumps({**decoder_versions(), "kept": r.kept, "sha256": r.sha256, "clean_s": round(time.monotonic() - t, 1)}))
"""


def pytest_counts(log: Path) -> dict:
    """passed/failed/skipped/errors from pytest's closing line, e.g. '== 3 failed, 402 passed, 5 skipped in 812s =='."""
    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0, "deselected": 0, "summary": None, "not_passed": []}
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if re.search(r"\d+ (passed|failed)", ln)]
    if lines:
        last = lines[-1].strip("= \n")
        counts["summary"] = last
        for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", last):
            counts["errors" if word.startswith("error") else word] = int(n)
    text = log.read_text(errors="replace").splitlines()
    counts["not_passed"] = [ln for ln in text if ln.startswith(("FAILED ", "ERROR "))]
    if not lines:  # killed by the timeout: count pytest -q's progress characters instead
        progress = "".join(ln.split(" [")[0] for ln in text if re.fullmatch(r"[.FEsxX]+\s*(\[\s*\d+%\])?", ln))
        counts.update(passed=progress.count("."), failed=progress.count("F"), skipped=progress.count("s"),
                      errors=progress.count("E"), summary=f"no summary (timed out); {len(progress)} tests ran")
    return counts
