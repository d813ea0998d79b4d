"""pyproject's ranges keep what Colab and Kaggle already have; the lock agrees with them; make finds a Python.

The platform table (bench/install/platforms.py, which bench.install.colab_case installs too) is what the notebook
platforms ship (issue 16): `pip install -e .` there must keep their torch,
numpy, scipy, Pillow. Tightening a range past one of these versions fails here, not on a student's notebook.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from bench.install.platforms import PLATFORMS

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements" / "lock.txt"
PYTHONS = ("3.11", "3.12", "3.13")


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def requirements(with_dev: bool = True) -> dict[str, Requirement]:
    deps = list(project()["dependencies"])
    if with_dev:
        deps += project()["optional-dependencies"]["dev"]
    reqs = [Requirement(d) for d in deps]
    return {canonicalize_name(r.name): r for r in reqs}


def lock_for(python: str) -> dict[str, Version]:
    """{package: version} the lock pins on this Python (markers evaluated as pip would there)."""
    env = {"python_version": python, "python_full_version": f"{python}.0"}
    pins: dict[str, Version] = {}
    for line in LOCK.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        (spec,) = req.specifier
        assert spec.operator == "==", f"lock line is not an exact pin: {line}"
        name = canonicalize_name(req.name)
        assert name not in pins, f"{name} pinned twice for Python {python}"
        pins[name] = Version(spec.version)
    return pins


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_every_range_admits_what_the_platform_already_has(platform: str) -> None:
    have = PLATFORMS[platform]
    assert project()["requires-python"] and Version(have["python"]) in Requirement(
        f"python{project()['requires-python']}"
    ).specifier
    reqs = requirements(with_dev=False)
    for name, version in have.items():
        if name == "python":
            continue
        assert name in reqs, f"{name} is in the platform table but not a dependency"
        assert reqs[name].specifier.contains(version, prereleases=True), (
            f"{platform} has {name} {version}, which pyproject's {reqs[name]} would replace"
        )


def test_python_311_to_313_are_all_allowed() -> None:
    spec = Requirement(f"python{project()['requires-python']}").specifier
    for python in PYTHONS:
        assert spec.contains(f"{python}.0")
    assert not spec.contains("3.10.14")


def test_ranges_are_ranges_except_where_said() -> None:
    for _name, req in requirements(with_dev=False).items():
        assert not any(s.operator == "==" for s in req.specifier), f"{req} is an exact pin; the lock holds pins"


def test_facenet_pytorch_stays_below_2_6() -> None:
    # facenet-pytorch 2.6 pins torch 2.2 and numpy < 2: it would replace a platform's torch.
    spec = requirements()["facenet-pytorch"].specifier
    assert spec.contains("2.5.3") and not spec.contains("2.6.0")


@pytest.mark.parametrize("python", PYTHONS)
def test_the_lock_pins_every_dependency_within_its_range(python: str) -> None:
    pins = lock_for(python)
    for name, req in requirements().items():
        if req.marker is not None and not req.marker.evaluate({"python_version": python}):
            continue
        assert name in pins, f"lock has no pin for {name} on Python {python}: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"lock pins {name} {pins[name]} on Python {python}, outside pyproject's {req}: run `make lock`"
        )


def test_the_lock_matches_this_environment_where_make_installed_it() -> None:
    """Under `make test` (.venv installed with -c lock) the versions running the suite are the lock's."""
    from importlib.metadata import PackageNotFoundError, version

    if Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        pytest.skip("not the project's .venv (installed without the lock, e.g. Colab's case)")
    python = "{}.{}".format(*sys.version_info[:2])
    for name in ("torch", "torchvision", "numpy", "scipy", "pillow", "pydantic"):
        try:
            assert Version(version(name)) == lock_for(python)[name], f"{name}: installed differs from the lock"
        except PackageNotFoundError:
            pytest.fail(f"{name} not installed")


def test_lock_markers_name_only_supported_pythons() -> None:
    for line in LOCK.read_text().splitlines():
        if ";" in line and not line.startswith("#"):
            marker = Marker(line.split(";", 1)[1])
            assert any(marker.evaluate({"python_version": p}) for p in PYTHONS), line


def _make(tmp_path: Path, path: list[Path], *args: str) -> subprocess.CompletedProcess:
    """make -n in a copy of the Makefile with PATH set to exactly `path` (make and sh by absolute path)."""
    (tmp_path / "Makefile").write_text((REPO / "Makefile").read_text())
    (tmp_path / "requirements").mkdir(exist_ok=True)
    for prerequisite in ("pyproject.toml", "requirements/lock.txt"):
        (tmp_path / prerequisite).touch()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "MAKEFLAGS", "MAKELEVEL")}
    env["PATH"] = os.pathsep.join(str(p) for p in path)
    make = subprocess.run(["which", "make"], capture_output=True, text=True).stdout.strip() or "/usr/bin/make"
    return subprocess.run([make, *args], cwd=tmp_path, env=env, capture_output=True, text=True)


def _bin(tmp_path: Path, runs: list[str], broken: list[str]) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in runs:
        (folder / name).symlink_to(sys.executable)
    for name in broken:  # as a pyenv shim for a version that is installed but not selected
        (folder / name).write_text("#!/bin/sh\necho 'pyenv: command not found' >&2\nexit 127\n")
        (folder / name).chmod(0o755)
    return folder


def test_make_picks_the_first_python_that_runs(tmp_path: Path) -> None:
    folder = _bin(tmp_path, runs=["python3.13"], broken=["python3.11", "python3.12"])
    out = _make(tmp_path, [folder], "-n", "install")
    assert out.returncode == 0, out.stderr
    assert "python3.13 -m venv .venv" in out.stdout
    assert "pip install --quiet -c requirements/lock.txt -e '.[dev]'" in out.stdout


def test_make_python_overrides_the_choice(tmp_path: Path) -> None:
    folder = _bin(tmp_path, runs=["python3.11", "python3.12"], broken=[])
    out = _make(tmp_path, [folder], "-n", "install", "PYTHON=python3.12")
    assert "python3.12 -m venv .venv" in out.stdout


def test_make_without_a_python_says_in_one_line_what_to_install(tmp_path: Path) -> None:
    folder = _bin(tmp_path, runs=[], broken=["python3.11"])
    out = _make(tmp_path, [folder], "-s", "install")
    assert out.returncode != 0
    said = out.stdout.strip().splitlines()
    assert len(said) == 1 and "install python3.11, python3.12 or python3.13" in said[0] and "PYTHON=" in said[0]
    assert not (tmp_path / ".venv").exists()
