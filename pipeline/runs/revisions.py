"""Read a run's files from the workspace, a git revision or a DVC experiment, the same way.

Usage:
    from pipeline.runs.revisions import open_run
    run = open_run(".", "exp-a1b2c")        # or None for the workspace, or any git revision: HEAD~1, main, a sha
    run.label                                # "exp-a1b2c"
    run.read_json("metrics/eval.json")       # None when the file is absent at that revision
    run.find("plots/train")                  # every file below a folder, sorted, repo-relative

A DVC experiment is a git commit under refs/exps/<..>/<..>/<name>; its git-tracked files (metrics with
`cache: false`) and its DVC-tracked outputs (read from the local cache) are both visible through DVC's
filesystem. The workspace is read straight from disk, so it works outside a DVC repository too.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.errors import UserError

WORKSPACE = "workspace"


@dataclass
class Run:
    """One revision's view of the repository: files by repo-relative path."""

    label: str
    root: Path
    commit: str | None = None  # None: the workspace on disk
    _fs: Any = field(default=None, repr=False)

    def _dvcfs(self) -> Any:
        if self._fs is None:
            from dvc.api import DVCFileSystem

            self._fs = DVCFileSystem(str(self.root), rev=self.commit)
        return self._fs

    def exists(self, path: str) -> bool:
        if self.commit is None:
            return (self.root / path).is_file()
        return bool(self._dvcfs().isfile(path))

    def read_bytes(self, path: str) -> bytes | None:
        """The file's bytes, or None when it does not exist at this revision."""
        if self.commit is None:
            file = self.root / path
            return file.read_bytes() if file.is_file() else None
        fs = self._dvcfs()
        try:
            return fs.read_bytes(path) if fs.isfile(path) else None
        except FileNotFoundError:
            # Tracked by DVC at that revision but missing from the local cache (never pulled).
            return None

    def read_json(self, path: str) -> Any:
        data = self.read_bytes(path)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError as e:
            raise UserError(f"{self.label}: {path} is not valid JSON ({e})") from None

    def find(self, folder: str) -> list[str]:
        """Every file below `folder` (repo-relative, sorted); empty when the folder is absent."""
        if self.commit is None:
            base = self.root / folder
            if not base.is_dir():
                return []
            return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())
        fs = self._dvcfs()
        if not fs.isdir(folder):
            return []
        return sorted(str(p).lstrip("/") for p in fs.find(folder))


def open_run(root: str | Path, rev: str | None) -> Run:
    """Resolve a git revision or DVC experiment name (None or "workspace": the files on disk)."""
    root = Path(root).resolve()
    if rev is None or rev == WORKSPACE:
        return Run(label=WORKSPACE, root=root)
    return Run(label=rev, root=root, commit=resolve_commit(root, rev))


def resolve_commit(root: Path, rev: str) -> str:
    """A full commit sha for a git revision or a DVC experiment name; UserError when it names neither."""
    if not (root / ".git").exists() and _git(root, "rev-parse", "--git-dir") is None:
        raise UserError(f"{root} is not a git repository: only the workspace can be read (no revisions given)")
    sha = _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if sha:
        return sha
    refs = _git(root, "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps") or ""
    matches = sorted({line.split()[0] for line in refs.splitlines() if line.endswith(f"/{rev}")})
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UserError(f"experiment name {rev!r} is ambiguous (several baselines): give its commit sha instead")
    raise UserError(f"{rev!r} is neither a git revision nor a DVC experiment (see `dvc exp show`)")


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise UserError("git is not installed: it is needed to read other revisions") from None
    return done.stdout.strip() if done.returncode == 0 else None
