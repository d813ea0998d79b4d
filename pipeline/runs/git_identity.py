"""Whether git knows who commits here: `dvc exp run` commits each experiment and refuses without a name and email.

Usage:
    from pipeline.runs.git_identity import missing_identity
    missing_identity(Path("."))   # [] or the settings git lacks, e.g. ["user.name", "user.email"]

A fresh Debian, Colab or Kaggle machine has none: the setting (any git config level) or the environment variables
GIT_AUTHOR_NAME / GIT_AUTHOR_EMAIL, which DVC also reads, count.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SETTINGS = {"user.name": "GIT_AUTHOR_NAME", "user.email": "GIT_AUTHOR_EMAIL"}


def missing_identity(repo: Path) -> list[str]:
    """The git settings among user.name and user.email that neither git's config in `repo` nor the environment set."""
    if shutil.which("git") is None:
        return []  # not this check's to report: DVC itself says it needs git
    missing = []
    for key, variable in SETTINGS.items():
        if os.environ.get(variable):
            continue
        found = subprocess.run(["git", "config", "--get", key], cwd=repo, capture_output=True, text=True)
        if not found.stdout.strip():
            missing.append(key)
    return missing
