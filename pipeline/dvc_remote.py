"""Before a pull: which of this commit's DVC outputs neither the local cache nor the DVC remote holds.

Usage:
    from pipeline.dvc_remote import check_pullable
    check_pullable(".", remote=None)            # UserError naming what is missing; None: the default remote
    check_pullable(".", "store", ["train"])     # only these stages' (or paths') outputs

`dvc pull` checks out what it can and stops at the first missing object with a warning that names its md5 and an
error over several lines: the workspace is left half-pulled. Checking first (DVC's own `dvc status --cloud`)
lets `animegan pull` refuse in one line and change nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import UserError, one_line

SHOWN = 5  # missing files named in the message; the rest are counted


def missing_outputs(root: str | Path, remote: str | None = None, targets: Sequence[str] = ()) -> list[str]:
    """Repo-relative files of the outputs (of targets, or of every stage) in neither the cache nor the remote."""
    from dvc.config import NoRemoteError
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            status = repo.status(targets=list(targets) or None, cloud=True, remote=remote)
    except NotDvcRepoError:
        raise UserError(f"{root} is not inside a DVC repository (run this in the clone)") from None
    except NoRemoteError:
        raise UserError("no DVC remote to pull from: `dvc remote add -d NAME URL`, or pass --remote NAME") from None
    except DvcException as e:
        raise UserError(f"cannot read the DVC remote: {one_line(e)}") from None
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
