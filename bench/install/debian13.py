"""The README's two commands on a fresh Debian 13 (trixie, Python 3.13) root, as a new user would run them.

    apt-get install debootstrap          # once, on the host (root)
    python -m bench.install.debian13     # make test, then make demo, in /var/tmp/animegan-debian13
    python -m bench.install.debian13 --no-demo --test-timeout 3000 --branch pkg

Builds the root with `debootstrap --variant=minbase trixie ROOT MIRROR` (MIRROR is read at run time from this
machine's own apt sources, never written here), installs python3, python3-venv, make and git from Debian's
packages (g++ and python3-dev too: torch.compile on CPU builds C++), clones the committed branch of this
repository into ROOT/srv/animegan (with this checkout's shared data folder bound read-only beside it at
ROOT/srv/shared, as CI has ../shared), and runs
`make test` and `make demo` there with nothing else on PATH.
Pip downloads everything from PyPI (torch for Python 3.13 with its CUDA libraries is a GB-scale download the first
time; the root's pip cache is kept between runs, the clone and its .venv are not). The host's CA bundle is copied
in for pip. Writes bench/results/debian13.json: Debian, Python, torch, torchvision, numpy, scipy, Pillow,
pydantic versions, pytest's passed/failed/skipped counts and failing tests, wall times, the load average (full
logs under /var/tmp/animegan-bench-logs/debian13/).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import LOGS, REPO, RESULTS, SHARED, run_timed, write_result
from bench.install.probes import VERSIONS, pytest_counts, versions_from

IN_ROOT = "srv"  # the clone lives at ROOT/srv/animegan, the shared data at ROOT/srv/shared
# g++ and python3-dev: torch.compile on CPU (inductor) builds C++; without them the compile tests skip.
PACKAGES = ["python3", "python3-venv", "make", "git", "ca-certificates", "g++", "python3-dev"]
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HOST_CA_IN_ROOT = "/etc/ssl/certs/host-ca-bundle.crt"
def apt_mirror() -> str:
    """The first Debian (non-security) archive URI in this machine's apt sources."""
    sources = Path("/etc/apt")
    text = ""
    for f in [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*"))]:
        if f.is_file() and (f.suffix in (".list", ".sources") or f.name == "sources.list"):
            text += f.read_text(errors="replace") + "\n"
    uris = re.findall(r"^URIs:\s*(\S+)", text, flags=re.M)
    uris += re.findall(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, flags=re.M)
    for uri in uris:
        if "security" not in uri and "debian" in uri:
            return uri
    sys.exit("no Debian mirror found in /etc/apt/sources.list{,.d}")


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


class Mounts:
    """proc, sys, dev, dev/pts, dev/shm and the shared data (read-only) inside the root; unmounted on exit."""

    def __init__(self, root: Path) -> None:
        self.root, self.done = root, []

    def __enter__(self) -> Mounts:
        binds = [
            ("proc", "proc", ["-t", "proc", "proc"]),
            ("sys", "sys", ["-t", "sysfs", "sysfs"]),
            ("dev", "dev", ["--bind", "/dev"]),
            ("dev/pts", "dev/pts", ["--bind", "/dev/pts"]),
            ("dev/shm", "dev/shm", ["-t", "tmpfs", "tmpfs"]),
        ]
        shared = f"{IN_ROOT}/shared"
        if SHARED.is_dir():
            binds.append((shared, shared, ["--bind", str(SHARED)]))
        for _, rel, args in binds:
            target = self.root / rel
            target.mkdir(parents=True, exist_ok=True)
            run(["mount", *args, str(target)])
            self.done.append(target)
            if rel == shared:
                run(["mount", "-o", "remount,bind,ro", str(target)])
        return self

    def __exit__(self, *exc) -> None:
        for target in reversed(self.done):
            subprocess.run(["umount", "-l", str(target)], check=False)


def chroot(root: Path, script: str, log: Path, timeout: float | None = None) -> tuple[int, float]:
    """Run a bash script in the root with a clean environment, its output to `log` and here; (exit code, seconds)."""
    env = {
        "HOME": "/root",
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
        "PIP_CERT": HOST_CA_IN_ROOT,
        "SSL_CERT_FILE": HOST_CA_IN_ROOT,
        "REQUESTS_CA_BUNDLE": HOST_CA_IN_ROOT,
        "ANIMEGAN_PROGRESS": "0",
        "PIP_DEFAULT_TIMEOUT": "180",
    }
    for k in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        if k in os.environ:
            env[k] = os.environ[k]
    cmd = ["chroot", str(root), "/bin/bash", "-c", script]
    if timeout:
        cmd = ["timeout", "--kill-after=30", str(int(timeout)), *cmd]
    ran = run_timed(cmd, env=env, log=log, tee=True, check=False)
    return ran.code, ran.seconds


def bootstrap(root: Path, mirror: str) -> None:
    stamp = root / ".animegan-bootstrapped"
    if stamp.exists():
        return
    if shutil.which("debootstrap") is None:
        sys.exit("debootstrap is missing: apt-get install debootstrap")
    run(["debootstrap", "--variant=minbase", "trixie", str(root), mirror])
    stamp.write_text(mirror + "\n")


def name_host(root: Path) -> None:
    """The host's name in the root's /etc/hosts, as Debian's installer writes it (127.0.1.1): debootstrap leaves
    only localhost there, and gloo (the DDP tests' CPU backend) resolves the machine's name to find its address."""
    hosts = root / "etc" / "hosts"
    name = os.uname().nodename
    text = hosts.read_text() if hosts.exists() else "127.0.0.1\tlocalhost\n"
    if not any(name in line.split()[1:] for line in text.splitlines() if not line.startswith("#")):
        hosts.write_text(text + f"127.0.1.1\t{name}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("/var/tmp/animegan-debian13"))
    ap.add_argument("--branch", default=None, help="branch to clone (default: the current branch)")
    ap.add_argument("--test-timeout", type=float, default=3600, help="seconds for `make test` (install included)")
    ap.add_argument("--demo-timeout", type=float, default=1200)
    ap.add_argument("--no-demo", action="store_true")
    ap.add_argument("--prepare-only", action="store_true", help="build the root and install the packages; no clone")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (debootstrap, chroot and mount need it)")
    branch = args.branch or subprocess.check_output(["git", "-C", str(REPO), "branch", "--show-current"], text=True)
    branch = branch.strip()
    root = args.root.resolve()
    bootstrap(root, apt_mirror())
    (root / HOST_CA_IN_ROOT.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CA_BUNDLE, root / HOST_CA_IN_ROOT.lstrip("/"))
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    name_host(root)
    logs = LOGS / "debian13"  # full logs stay out of the repo
    logs.mkdir(parents=True, exist_ok=True)
    with Mounts(root):
        install = f"apt-get update -qq && apt-get install -y -qq --no-install-recommends {' '.join(PACKAGES)}"
        rc, _ = chroot(root, install, logs / "apt-get.log")
        if rc:
            sys.exit(f"apt-get install in the root failed ({rc})")
        if args.prepare_only:
            return
        clone = root / IN_ROOT / "animegan"
        shutil.rmtree(clone, ignore_errors=True)
        run(["git", "clone", "-q", "--branch", branch, str(REPO), str(clone)])
        commit = subprocess.check_output(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], text=True).strip()
        load_before = Path("/proc/loadavg").read_text().split()[:3]
        test_log = logs / "make-test.log"
        cd = f"cd /{IN_ROOT}/animegan"
        rc_test, t_test = chroot(root, f"{cd} && make test", test_log, args.test_timeout)
        load_after = Path("/proc/loadavg").read_text().split()[:3]
        _, _ = chroot(root, f"{cd} && .venv/bin/python -c \"{VERSIONS}\"", logs / "versions.log", 120)
        versions = versions_from((logs / "versions.log").read_text())
        rc_demo, t_demo = None, None
        if not args.no_demo:
            rc_demo, t_demo = chroot(root, f"{cd} && make demo", logs / "make-demo.log", args.demo_timeout)
        os_release = (root / "etc/os-release").read_text()
        debian = re.search(r'PRETTY_NAME="([^"]*)"', os_release).group(1)
        debian_version = (root / "etc/debian_version").read_text().strip()
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": commit,
        "branch": branch,
        "debian": f"{debian} ({debian_version})",
        "versions": versions,
        "make_test": {
            "exit_code": rc_test,
            "timed_out": rc_test in (124, 137),
            "timeout_s": args.test_timeout,
            "wall_s": round(t_test, 1),
            **pytest_counts(test_log),
        },
        "make_demo": None if rc_demo is None else {"exit_code": rc_demo, "wall_s": round(t_demo, 1)},
        "loadavg_before_after": [load_before, load_after],
        "logs": str(logs),
        "cores": os.cpu_count(),
    }
    write_result(RESULTS / "debian13.json", result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
