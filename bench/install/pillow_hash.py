"""Does the Pillow version change faces.npy? clean's sha256 on the shared 5k zip under each Pillow in our range.

    python -m bench.install.pillow_hash                  # Pillow 10.4.0 11.3.0 12.3.0 13.0.0
    python -m bench.install.pillow_hash --pillow 11.3.0 13.0.0 --zip ../shared/data/anime-faces-5k.zip

For each version: a fresh venv (this interpreter) with only that Pillow, numpy and tqdm from the registry, then
pipeline.data.clean.clean_faces with params.yaml's data settings (64 px, lanczos) on the extracted zip
(bench/install/probes.py's CLEAN). Prints one line per version (Pillow, its libjpeg-turbo, the sha256, seconds) and
writes bench/results/pillow_hash.json. The recorded hash (bench.common.SHARED_FACES_SHA256) that
tests/data/test_clean_hash.py checks is the lock's Pillow's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from bench.common import REPO, RESULTS, SHARED_FACES_SHA256, SHARED_ZIP, require, write_result
from bench.install.probes import CLEAN


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pillow", nargs="+", default=["10.4.0", "11.3.0", "12.3.0", "13.0.0"])
    ap.add_argument("--zip", type=Path, default=SHARED_ZIP)
    args = ap.parse_args()
    require(args.zip)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pillow-hash-") as tmp:
        tmp = Path(tmp)
        with zipfile.ZipFile(args.zip) as z:
            z.extractall(tmp / "raw")
        for version in args.pillow:
            venv = tmp / f"venv-{version}"
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            py = str(venv / "bin" / "python")
            subprocess.run([py, "-m", "pip", "install", "--quiet", f"Pillow=={version}", "numpy", "tqdm"], check=True)
            out = subprocess.run(
                [py, "-c", CLEAN, str(tmp / "raw" / "faces"), str(tmp / f"clean-{version}")],
                check=True, capture_output=True, text=True, cwd=REPO,
                env={"PYTHONPATH": str(REPO), "ANIMEGAN_PROGRESS": "0"},
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"Pillow {row['pillow']} (libjpeg-turbo {row['libjpeg_turbo']}, numpy {row['numpy']}): "
                  f"{row['sha256']} in {row['clean_s']} s", flush=True)
    load = Path("/proc/loadavg").read_text().split()[:3]
    result = {"python": sys.version.split()[0], "zip": args.zip.name, "runs": rows, "loadavg": load,
              "same_hash": len({r["sha256"] for r in rows}) == 1,
              "recorded_hash": all(r["sha256"] == SHARED_FACES_SHA256 for r in rows)}  # fmt: skip
    write_result(RESULTS / "pillow_hash.json", result)
    print(f"same hash for all: {result['same_hash']}; load average {' '.join(load)}")


if __name__ == "__main__":
    main()
