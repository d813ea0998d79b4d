"""Which notebook platform this process runs on (Colab, Kaggle or neither), and what each one asks of a run.

Usage:
    from pipeline.core.platform import detect_platform, accelerator_hint, sync_needs_extra, secrets_to_environ
    detect_platform()                        # "colab" | "kaggle" | None, from the environment (and /kaggle)
    detect_platform({"COLAB_RELEASE_TAG": "release-colab"}, kaggle_dir=False)   # "colab": testable
    accelerator_hint("kaggle")               # "on Kaggle pick Settings > Accelerator > GPU T4 x2"
    sync_needs_extra("hf://datasets/me/runs")   # True: pip install -e '.[sync]' first
    secrets_to_environ("s3://bucket/runs", platform_secret_reader("colab"), os.environ)
    drive_folder("wgan-gp")                  # /content/drive/MyDrive/animegan/wgan-gp: Colab's train.sync
    kaggle_sync_folder()                     # /kaggle/working/checkpoints: Kaggle's train.sync, kept by a saved version
    earlier_outputs(workspace="animegan")    # [/kaggle/input/<earlier-version>/checkpoints]: train.resume_from

Colab sets COLAB_RELEASE_TAG (and COLAB_GPU); Kaggle sets KAGGLE_KERNEL_RUN_TYPE and has /kaggle. A token for
train.sync lives in the platform's secrets (Colab: the key icon, `google.colab.userdata`; Kaggle: Add-ons >
Secrets, `kaggle_secrets`), which are not environment variables: secrets_to_environ copies the ones the URL's
fsspec backend reads (HF_TOKEN; AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, ...) into the
environment, never over a variable already set.

Kaggle keeps a session's /kaggle/working only as a saved version's output, which a later session reads back
read-only under /kaggle/input/... once added as input: the notebook keeps a Kaggle run's checkpoints in
/kaggle/working/checkpoints (train.sync, each with its sha256 in latest.json), and earlier_outputs() finds such
folders of earlier outputs to resume from (train.resume_from; pipeline/train/resume_source.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path

from pipeline.core.errors import UserError

COLAB, KAGGLE = "colab", "kaggle"
ACCELERATOR = {  # where each platform switches its GPU on
    KAGGLE: "on Kaggle pick Settings > Accelerator > GPU T4 x2",
    COLAB: "on Colab pick Runtime > Change runtime type > T4 GPU",
}
SECRETS_PLACE = {
    COLAB: "Colab's Secrets (the key icon on the left; allow this notebook access)",
    KAGGLE: "Kaggle's Add-ons > Secrets (tick it for this notebook)",
}
DRIVE_MOUNT = Path("/content/drive")
KAGGLE_WORKING, KAGGLE_INPUT = Path("/kaggle/working"), Path("/kaggle/input")
KAGGLE_CHECKPOINTS = "checkpoints"  # the folder of /kaggle/working that holds a Kaggle run's train.sync
# Per URL scheme: the variables its fsspec backend needs, then those it reads when present.
SYNC_SECRETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "hf": (("HF_TOKEN",), ()),
    "s3": (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
           ("AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION")),  # fmt: skip
    "gs": ((), ("GOOGLE_APPLICATION_CREDENTIALS",)),
}
SYNC_EXTRA_SCHEMES = {"s3", "hf", "gs", "gcs"}  # served by pyproject's `sync` extra (s3fs, huggingface_hub, gcsfs)

SecretReader = Callable[[str], str | None]


def detect_platform(environ: Mapping[str, str] | None = None, kaggle_dir: bool | None = None) -> str | None:
    """"colab", "kaggle" or None. By default from os.environ and whether /kaggle exists."""
    environ = os.environ if environ is None else environ
    kaggle_dir = Path("/kaggle").is_dir() if kaggle_dir is None else kaggle_dir
    if "KAGGLE_KERNEL_RUN_TYPE" in environ or kaggle_dir:
        return KAGGLE
    if "COLAB_RELEASE_TAG" in environ or "COLAB_GPU" in environ:
        return COLAB
    return None


def accelerator_hint(platform: str | None) -> str | None:
    """How to switch the GPU on there, or None off the notebook platforms."""
    return ACCELERATOR.get(platform or "")


def drive_folder(name: str, mount: Path = DRIVE_MOUNT) -> Path:
    """The Drive folder a Colab run of experiment `name` keeps its checkpoints and results in."""
    return mount / "MyDrive" / "animegan" / name


def sync_scheme(url: str) -> str | None:
    """The URL's scheme (s3, hf, gs, ...), or None for a plain folder."""
    scheme, sep, _ = str(url).partition("://")
    return scheme.lower() if sep and scheme.lower() not in ("file", "") else None


def sync_needs_extra(url: str) -> bool:
    """Whether train.sync at `url` needs the `sync` extra (an object store rather than a folder)."""
    return sync_scheme(url) in SYNC_EXTRA_SCHEMES


def platform_secret_reader(platform: str | None) -> SecretReader:
    """A function NAME -> the platform's secret of that name, or None when it has none (or may not read it)."""
    if platform == COLAB:

        def read(name: str) -> str | None:
            from google.colab import userdata  # Colab only

            try:
                return userdata.get(name)
            except Exception:  # SecretNotFoundError, NotebookAccessError: both mean "not available here"
                return None

        return read
    if platform == KAGGLE:

        def read_kaggle(name: str) -> str | None:
            from kaggle_secrets import UserSecretsClient  # Kaggle only

            try:
                return UserSecretsClient().get_secret(name)
            except Exception:  # an unknown name or a secret not attached to this notebook
                return None

        return read_kaggle
    return lambda name: None


def secrets_to_environ(
    url: str, read_secret: SecretReader, environ: MutableMapping[str, str], platform: str | None = None
) -> list[str]:
    """Copy the secrets the URL's backend reads into `environ` (never over one already set); the names copied.
    UserError when a needed one is in neither, naming where to add it."""
    needed, optional = SYNC_SECRETS.get(sync_scheme(url) or "", ((), ()))
    copied, missing = [], []
    for name in (*needed, *optional):
        if environ.get(name):
            continue
        value = read_secret(name)
        if value:
            environ[name] = value
            copied.append(name)
        elif name in needed:
            missing.append(name)
    if missing:
        where = SECRETS_PLACE.get(platform or "", "the environment")
        raise UserError(f"train.sync {url} needs {' and '.join(missing)}: add {'them' if len(missing) > 1 else 'it'} "
                        f"to {where}, or set the environment variable")  # fmt: skip
    return copied


def kaggle_sync_folder(working: Path = KAGGLE_WORKING) -> Path:
    """Where the notebook keeps a Kaggle run's checkpoints (train.sync): in /kaggle/working, which a saved version
    keeps as its output, beside the workspace (outside its outputs)."""
    return working / KAGGLE_CHECKPOINTS


def earlier_outputs(input_root: Path = KAGGLE_INPUT, workspace: str = "animegan", depth: int = 3) -> list[Path]:
    """Earlier outputs of the notebook added as input, at most depth folders under input_root: for each, its
    checkpoints/ when that holds train.sync run folders (<run>/latest.json), else its workspace folder when that
    holds models/checkpoint.pt. What train.resume_from may name; sorted, [] when input_root does not exist."""
    found, level = [], [Path(input_root)]
    for _ in range(depth):
        level = [Path(e.path) for folder in level for e in _folders(folder)]
        for output in level:
            if any((output / KAGGLE_CHECKPOINTS).glob("*/latest.json")):
                found.append(output / KAGGLE_CHECKPOINTS)
            elif (output / workspace / "models" / "checkpoint.pt").is_file():
                found.append(output / workspace)
    return sorted(found)


def _folders(folder: Path) -> list[os.DirEntry]:
    """The folders right inside folder (none when it is not one); from the listing's entry types, so a dataset of
    71k images costs no stat each."""
    try:
        with os.scandir(folder) as entries:
            return [e for e in entries if e.is_dir()]
    except OSError:
        return []
