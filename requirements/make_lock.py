"""Writes requirements/lock.txt: the exact versions pip's resolver picks for `.[dev]`, for Python 3.11, 3.12, 3.13.

    make lock                                   # python3.11, python3.12 and python3.13 must all run
    make lock LOCK_PYTHONS="/opt/py311/bin/python3 /opt/py312/bin/python3 /opt/py313/bin/python3"
    python requirements/make_lock.py PY311 PY312 PY313

For each interpreter: a fresh venv in a temporary folder, its pip upgraded, then
`pip install --dry-run --ignore-installed --report REPORT -e '.[dev]'` (nothing is installed; pip resolves from
the registry exactly as a real install would, honouring any pip configuration of this machine). The reports are
merged into one constraints file valid on every one of those Pythons: a package whose version is the same
everywhere is one line, one that differs gets a `python_version` marker per version. `make install`, `make test`
and `make demo` install with `pip install -c requirements/lock.txt -e '.[dev]'`; a constraints file only holds
versions, so a platform that needs fewer packages (a Mac: no CUDA libraries) installs the subset it needs.
Re-run after changing pyproject.toml's dependencies, then `make test` before committing the new lock.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements" / "lock.txt"
PROJECT = "animegan-pipeline"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve(python: str) -> tuple[str, dict[str, str]]:
    """(major.minor, {package: version}) that pip resolves for the project's dev install on this interpreter."""
    with tempfile.TemporaryDirectory(prefix="animegan-lock-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        py = str(venv / "bin" / "python")
        subprocess.run([py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
        version = subprocess.check_output([py, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], text=True)
        report = Path(tmp) / "report.json"
        subprocess.run(
            [py, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed", "--report", str(report),
             "-e", f"{REPO}[dev]"],
            check=True,
        )
        chosen = {
            canonical(item["metadata"]["name"]): item["metadata"]["version"]
            for item in json.loads(report.read_text())["install"]
        }
    chosen.pop(PROJECT, None)
    return version.strip(), chosen


def merge(resolved: dict[str, dict[str, str]]) -> list[str]:
    """One constraint line per package, or one per Python version with a marker where the versions differ."""
    lines = []
    pythons = sorted(resolved, key=lambda v: tuple(map(int, v.split("."))))
    for name in sorted({n for chosen in resolved.values() for n in chosen}):
        versions = {py: resolved[py].get(name) for py in pythons}
        if len(set(versions.values())) == 1:
            lines.append(f"{name}=={versions[pythons[0]]}")
            continue
        for py in pythons:
            if versions[py] is not None:
                lines.append(f'{name}=={versions[py]} ; python_version == "{py}"')
    return lines


def main(pythons: list[str]) -> None:
    resolved = {}
    for python in pythons:
        if subprocess.run([python, "-c", "import venv"], capture_output=True).returncode != 0:
            print(f"{python}: does not run (or has no venv module), skipped", file=sys.stderr)
            continue
        version, chosen = resolve(python)
        resolved[version] = chosen
        print(f"{python}: Python {version}, {len(chosen)} packages", file=sys.stderr)
    missing = {"3.11", "3.12", "3.13"} - set(resolved)
    if missing:
        sys.exit(f"the lock must cover Python 3.11-3.13; no interpreter given for {', '.join(sorted(missing))}"
                 " (make lock LOCK_PYTHONS='PY311 PY312 PY313')")
    header = [
        "# Exact versions tested by `make test`: a constraints file for Python 3.11-3.13, written by `make lock`",
        "# (requirements/make_lock.py: pip's resolver, --dry-run --report, in a fresh venv per Python). Do not edit.",
        "# Install with: pip install -c requirements/lock.txt -e '.[dev]'",
    ]
    LOCK.write_text("\n".join(header + merge(resolved)) + "\n")
    print(f"wrote {LOCK.relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
