"""train.resume_from: an earlier run's checkpoints, only ever read, resumed through the checks a synced one passes.

Usage:
    from pipeline.train.resume_source import ResumeSource
    source = ResumeSource.open("/kaggle/input/<earlier-output>/animegan", signature, Path("models/checkpoint.pt"))
    source.resume(local_step=0, signature=signature, dest=Path("models/checkpoint.pt"), max_step=1115,
                  check=check)      # -> the step installed as dest, or None (dest untouched)
    source.other_params             # its candidates that record other params (train.on_mismatch decides on them)

Why a source apart from train.sync: a Kaggle session keeps nothing but a saved version's output, which a later
session reads back read-only under /kaggle/input/... once added as input (a shared Drive folder or bucket may be
read-only too). train.sync is where this run publishes, with a lease and a pointer it rewrites; train.resume_from is
only read: opened for reading, no lease, no heartbeat, no pointer update, no pruning, nothing created there. It must
lie outside this workspace's outputs and hold nothing this workspace writes (pipeline.core.config).

What it may name, a local path or an fsspec URL as train.sync (the first that fits):
  1. a checkpoint file: an earlier output's models/checkpoint.pt;
  2. one run's folder of train.sync's layout (its latest.json in it);
  3. a train.sync location: the folder of these params under it (<model>-<loss>-<16 hex>/latest.json);
  4. a folder holding checkpoint.pt (an earlier models/), or an earlier workspace holding it as this workspace does
     (models/checkpoint.pt): e.g. /kaggle/input/<earlier-output>/animegan.
A location with only other params' run folders (3) gives candidates of other params; a path that does not exist or
holds none of these is a one-line UserError.

Checks. A sync layout's candidates go through SyncFolder.resume exactly as train.sync's do: latest.json's entry, then
its previous one, each downloaded to a temporary beside dest, its size and sha256 checked against latest.json, then
check(temporary, entry) (the caller's: its params, its step and fingerprint as latest.json records them, no more
steps than asked), and only then renamed over dest. A checkpoint file has no pointer that records its sha256: it
is copied the same way (install_verified), its size checked against the source's listing, its step read, then
check() loads it whole and checks its params and steps. A truncated copy does not load (torch's zip format keeps its
directory at the end), but a byte changed inside a tensor would load unnoticed (torch checks no CRC when loading):
the sync layout is the verified one, and the notebook keeps its Kaggle checkpoints that way. A fingerprint that
differs is warned about when training resumes, as for a local checkpoint. A candidate that fails is skipped with
one warning, for the next.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from pipeline.core.errors import UserError, one_line
from pipeline.train.sync import POINTER, SyncFolder, folder_name, install_verified, open_location, store_errors

log = logging.getLogger(__name__)

KEY = "train.resume_from"
RUN_FOLDER = re.compile(r".+-[0-9a-f]{16}")  # train.sync's <model>-<loss>-<16 hex of the signature>

Check = Callable[[Path, dict[str, Any]], "str | None"]


class ResumeSource:
    """train.resume_from, found and opened read-only: a run folder of train.sync's layout, or one checkpoint file."""

    def __init__(self, url: str, fs: Any, folder: SyncFolder | None = None, file: str | None = None,
                 shown: str | None = None, other_runs: list[str] | None = None):  # fmt: skip
        self.url, self.fs, self.folder, self.file = url, fs, folder, file
        self.shown = shown or url  # the checkpoint file as the log names it
        self.other_params: list[str] = list(other_runs or [])
        self.newest_step: int | None = None  # the newest step seen there, once resume() has looked

    @property
    def where(self) -> str:
        """The folder its candidates' files are in, as the log names it."""
        return self.folder.url if self.folder is not None else self.shown.rsplit("/", 1)[0]

    @classmethod
    def open(cls, url: str, signature: dict[str, Any], checkpoint: Path) -> ResumeSource:
        """Find what url holds for a training of these params whose checkpoint is `checkpoint`; UserError when
        it does not exist, cannot be read or holds no checkpoint."""
        fs, root = open_location(url, KEY)
        with store_errors(KEY, url):
            return cls._find(url, fs, root, signature, checkpoint)

    @classmethod
    def _find(cls, url: str, fs: Any, root: str, signature: dict[str, Any], checkpoint: Path) -> ResumeSource:
        url = url.rstrip("/")
        if not fs.exists(root):
            raise UserError(f"{KEY} {url}: no such file or folder (an earlier Kaggle version's output, once added "
                            "as input, is under /kaggle/input/)")  # fmt: skip
        if fs.isfile(root):
            return cls(url, fs, file=root)
        if fs.isfile(f"{root}/{POINTER}"):  # one run's folder
            parent, name = root.rsplit("/", 1)
            return cls(url, fs, folder=SyncFolder(fs, parent or "/", name, url.rsplit("/", 1)[0]))
        name = folder_name(signature)
        if fs.isfile(f"{root}/{name}/{POINTER}"):
            return cls(url, fs, folder=SyncFolder(fs, root, name, url))
        places = checkpoint_places(checkpoint)
        for place in places:
            if fs.isfile(f"{root}/{place}"):
                return cls(url, fs, file=f"{root}/{place}", shown=f"{url}/{place}")
        others = [f"{url}/{run} (another run's folder)" for run in _run_folders(fs, root)]
        if others:
            return cls(url, fs, other_runs=others)
        raise UserError(f"{KEY} {url}: holds no checkpoint (looked for {' and '.join(places)} in it, and train.sync's "
                        f"{POINTER}): name an earlier run's {checkpoint.name} or the folder that holds it")  # fmt: skip

    def resume(
        self, local_step: int, signature: dict[str, Any], dest: Path, max_step: int | None, check: Check
    ) -> int | None:
        """Install the newest checkpoint here above local_step that passes every check as dest; its step, or None
        (dest untouched). Reads only."""
        if self.folder is not None:
            step = self.folder.resume(local_step, signature, dest, max_step, check)
            self.newest_step = self.folder.newest_step
            self.other_params += self.folder.other_params
            return step
        if self.file is not None:
            return self._resume_file(local_step, dest, max_step, check)
        return None

    def _resume_file(self, local_step: int, dest: Path, max_step: int | None, check: Check) -> int | None:
        entry: dict[str, Any] = {"file": self.file.rsplit("/", 1)[-1], "size": self.fs.size(self.file)}

        def vetted(candidate: Path, entry: dict[str, Any]) -> str | None:
            try:
                entry["step"] = self.newest_step = _step_of(candidate)
            except Exception as e:
                return f"is not a checkpoint this version reads ({one_line(e, 160)})"
            if entry["step"] <= local_step:
                raise _NotNewer
            if max_step is not None and entry["step"] > max_step:
                return f"holds step {entry['step']}, more than the {max_step} asked"
            return check(candidate, entry)

        try:
            problem = install_verified(self.fs, self.file, dest, entry, vetted)
        except _NotNewer:
            log.info("the local checkpoint (step %d) is as new as %s (step %d): keeping it", local_step, self.shown,
                     entry["step"])  # fmt: skip
            return None
        if problem is None:
            log.info("resuming from %s (step %d, %s)", self.shown, entry["step"], KEY)
            return int(entry["step"])
        then = f"falling back to the local checkpoint (step {local_step})" if local_step else "not resuming from it"
        log.warning("%s (%s) %s: %s", self.shown, KEY, problem, then)
        return None


class _NotNewer(Exception):
    """A checkpoint file no newer than the local one: left where it is, without a warning."""


def checkpoint_places(checkpoint: Path) -> list[str]:
    """Where a folder may hold the checkpoint, relative to it: its file name (an earlier models/), then its folder's
    name and its file name, then its path inside this workspace (an earlier workspace: models/checkpoint.pt)."""
    places = [checkpoint.name, f"{checkpoint.parent.name}/{checkpoint.name}"]
    relative = checkpoint
    if checkpoint.is_absolute():
        try:
            relative = checkpoint.relative_to(Path.cwd())
        except ValueError:
            return places
    if relative.as_posix() not in places and ".." not in relative.parts:
        places.append(relative.as_posix())
    return places


def _step_of(candidate: Path) -> int:
    """The step a checkpoint file holds, read without loading its tensors (mapped, not read)."""
    state = torch.load(candidate, map_location="cpu", weights_only=True, mmap=True)
    return int(state["step"])


def _run_folders(fs: Any, root: str) -> list[str]:
    """The names of train.sync run folders (with a latest.json) right under root."""
    names = []
    for path in fs.ls(root, detail=False):
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if RUN_FOLDER.fullmatch(name) and fs.isfile(f"{path.rstrip('/')}/{POINTER}"):
            names.append(name)
    return sorted(names)
