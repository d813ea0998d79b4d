"""Pull a commit's DVC outputs only when all of them can be had; otherwise one line, and the workspace unchanged.

Usage:
    from pipeline.runs.remote import pull, check_pullable
    pull(".", remote=None)                      # check, fetch into the cache, then check out; None: default remote
    pull(".", "store", ["train"], dvc="dvc")    # only these stages' (or paths') outputs
    check_pullable(".")                         # just the first check: UserError naming what the remote lacks

Plain `dvc pull` checks out what it can and stops at the first missing object with a warning that names its md5
and an error over several lines: the workspace is left half-pulled. Here DVC's own commands run in an order that
cannot do that: `dvc status --cloud` names the files neither the cache nor the remote holds; `dvc fetch` fills
only the cache (a remote may hold a folder's listing but lose a file in it, which only the transfer finds); and
only when the cache holds everything does `dvc checkout` touch the workspace.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from contextlib import chdir
from pathlib import Path

from pipeline.core.errors import UserError, one_line

SHOWN = 5  # missing files named in the message; the rest are counted


def missing_outputs(root: str | Path, remote: str | None = None, targets: Sequence[str] = ()) -> list[str]:
    """Repo-relative files of the outputs (of targets, or of every stage) in neither the cache nor the remote."""
    from dvc.config import NoRemoteError
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo

    try:
        with chdir(root), Repo(".") as repo:  # DVC reads targets relative to the working directory
            status = repo.status(targets=list(targets) or None, cloud=True, remote=remote)
    except NotDvcRepoError:
        raise UserError(f"{root} is not inside a DVC repository (run this in the clone)") from None
    except NoRemoteError:
        raise UserError("no DVC remote to pull from: `dvc remote add -d NAME URL`, or pass --remote NAME") from None
    except DvcException as e:
        while e.__cause__ is not None:  # "Failed to collect 'workspace'" wraps the useful "remote 'x' doesn't exist"
            e = e.__cause__
        raise UserError(f"dvc: {one_line(e)}") from None
    return sorted(path for path, state in status.items() if state == "missing")


def check_pullable(root: str | Path, remote: str | None = None, targets: Sequence[str] = ()) -> None:
    missing = missing_outputs(root, remote, targets)
    if not missing:
        return
    where = f"DVC remote {remote!r}" if remote else "the default DVC remote"
    shown = ", ".join(missing[:SHOWN]) + (f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else "")
    raise UserError(
        f"{where} lacks {len(missing)} file(s) of this commit's outputs, so nothing was pulled: {shown} "
        "(run `dvc push` where they were made)"
    )


def outputs_not_in_cache(root: str | Path, targets: Sequence[str] = ()) -> list[str]:
    """Outputs (files or whole folders) of targets, or of every stage, that DVC's local cache does not hold."""
    from dvc.repo import Repo

    with chdir(root), Repo(".") as repo:
        status = repo.status(targets=list(targets) or None)
    return sorted(
        path
        for changes in status.values()
        for change in changes
        if isinstance(change, dict)
        for path, state in change.get("changed outs", {}).items()
        if state == "not in cache"
    )


def pull(root: str | Path, remote: str | None = None, targets: Sequence[str] = (), dvc: str = "dvc") -> int:
    """Check, fetch, check out (see the module docstring); returns `dvc checkout`'s exit code."""
    check_pullable(root, remote, targets)
    flags = ["--remote", remote] if remote else []
    fetched = subprocess.run([dvc, "fetch", *flags, *targets], cwd=root, capture_output=True, text=True)
    if fetched.returncode != 0:
        lacking = outputs_not_in_cache(root, targets)
        where = f"DVC remote {remote!r}" if remote else "the default DVC remote"
        what = ", ".join(lacking) if lacking else one_line(fetched.stderr.strip() or "unknown error")
        raise UserError(f"{where} could not provide all of: {what}; nothing was checked out (`dvc fetch` says why)")
    return subprocess.run([dvc, "checkout", *targets], cwd=root).returncode
