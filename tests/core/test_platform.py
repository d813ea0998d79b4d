"""pipeline/core/platform.py: the notebook platform, its accelerator hint, and train.sync's tokens from its secrets.

Colab's `google.colab.userdata` and Kaggle's `kaggle_secrets` exist only there: here each is a stand-in module of
the same name and call (written to tmp_path and put first on sys.path), holding the secrets in a JSON file. The
last test takes the S3 credentials and endpoint from the stand-in Colab secrets and publishes a checkpoint through
train.sync's own code to a real S3 endpoint (moto's server on 127.0.0.1), in a process that has no other AWS setting.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core.errors import UserError
from pipeline.core.platform import (
    accelerator_hint,
    detect_platform,
    drive_folder,
    earlier_outputs,
    kaggle_sync_folder,
    platform_secret_reader,
    secrets_to_environ,
    sync_needs_extra,
    sync_scheme,
)

REPO = Path(__file__).resolve().parents[2]
COLAB_USERDATA = '''
import json, pathlib
class SecretNotFoundError(Exception):
    pass
def get(key):
    found = json.loads((pathlib.Path(__file__).parents[2] / "secrets.json").read_text())
    if key not in found:
        raise SecretNotFoundError(key)
    return found[key]
'''
KAGGLE_SECRETS = '''
import json, pathlib
class UserSecretsClient:
    def get_secret(self, label):
        found = json.loads((pathlib.Path(__file__).parent / "secrets.json").read_text())
        if label not in found:
            raise ValueError(f"no secret {label}")  # Kaggle's client raises on an unknown label too
        return found[label]
'''


def stand_ins(folder: Path, secrets: dict[str, str]) -> Path:
    """google/colab/userdata.py and kaggle_secrets.py serving `secrets` (google/ stays a namespace package)."""
    (folder / "google" / "colab").mkdir(parents=True)
    (folder / "google" / "colab" / "__init__.py").write_text("")
    (folder / "google" / "colab" / "userdata.py").write_text(COLAB_USERDATA)
    (folder / "kaggle_secrets.py").write_text(KAGGLE_SECRETS)
    (folder / "secrets.json").write_text(json.dumps(secrets))
    return folder


@pytest.fixture
def secrets_modules(tmp_path, monkeypatch):
    def install(secrets: dict[str, str]) -> None:
        monkeypatch.syspath_prepend(str(stand_ins(tmp_path / "platform", secrets)))
        for name in ("google.colab.userdata", "google.colab", "kaggle_secrets"):
            monkeypatch.delitem(sys.modules, name, raising=False)

    return install


def test_platform_told_apart_by_its_variables_and_what_each_needs():
    assert detect_platform({"COLAB_RELEASE_TAG": "release-colab-20260101"}, kaggle_dir=False) == "colab"
    assert detect_platform({"COLAB_GPU": "1"}, kaggle_dir=False) == "colab"
    assert detect_platform({"KAGGLE_KERNEL_RUN_TYPE": "Batch"}, kaggle_dir=False) == "kaggle"
    assert detect_platform({}, kaggle_dir=False) is None
    assert accelerator_hint("colab") == "on Colab pick Runtime > Change runtime type > T4 GPU"
    assert accelerator_hint("kaggle") == "on Kaggle pick Settings > Accelerator > GPU T4 x2"
    assert accelerator_hint(None) is None
    assert drive_folder("wgan-gp") == Path("/content/drive/MyDrive/animegan/wgan-gp")
    assert [sync_scheme(u) for u in ("hf://datasets/a/b", "S3://b/x", "/content/drive/x", "file:///x")] == [
        "hf", "s3", None, None]  # fmt: skip
    assert sync_needs_extra("s3://bucket/runs") and sync_needs_extra("hf://datasets/me/runs")
    assert not sync_needs_extra("/content/drive/MyDrive/animegan") and not sync_needs_extra("")


def test_earlier_kaggle_outputs_are_found_under_the_input_folder(tmp_path):
    """/kaggle/input as Kaggle lays it out: a dataset of faces, the project as a dataset, and earlier versions'
    outputs of the notebook (a checkpoints/ of train.sync run folders; an older one with only its workspace), one a
    level deeper; folders of other things, and a checkpoints/ without a run, are not outputs to resume from."""
    root = tmp_path / "input"
    (root / "faces-dataset" / "faces").mkdir(parents=True)
    for i in range(3):
        (root / "faces-dataset" / "faces" / f"{i}.jpg").write_bytes(b"jpeg")
    (root / "animegan-code" / "animegan" / "models").mkdir(parents=True)  # the project: no checkpoint in it
    run = root / "my-notebook" / "checkpoints" / "dcgan-gan-0123456789abcdef"
    run.mkdir(parents=True)
    (run / "latest.json").write_text("{}")
    (root / "my-notebook" / "animegan" / "models").mkdir(parents=True)
    (root / "my-notebook" / "animegan" / "models" / "checkpoint.pt").write_bytes(b"pt")
    older = root / "notebooks" / "someone" / "older-notebook" / "animegan" / "models"
    older.mkdir(parents=True)
    (older / "checkpoint.pt").write_bytes(b"pt")
    (root / "empty-output" / "checkpoints" / "not-a-run").mkdir(parents=True)
    assert earlier_outputs(root) == [root / "my-notebook" / "checkpoints",
                                     root / "notebooks" / "someone" / "older-notebook" / "animegan"]
    assert earlier_outputs(root, depth=2) == [root / "my-notebook" / "checkpoints"]
    assert earlier_outputs(root, workspace="elsewhere") == [root / "my-notebook" / "checkpoints"]
    assert earlier_outputs(tmp_path / "no-input") == []
    assert kaggle_sync_folder() == Path("/kaggle/working/checkpoints")


@pytest.mark.parametrize("platform", ["colab", "kaggle"])
def test_tokens_come_from_the_platforms_secrets_never_over_a_set_variable(platform, secrets_modules):
    secrets_modules({"HF_TOKEN": "hf_secret", "AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret",
                     "AWS_ENDPOINT_URL": "https://s3.example.org"})  # fmt: skip
    read = platform_secret_reader(platform)
    assert read("HF_TOKEN") == "hf_secret" and read("NOPE") is None

    env: dict[str, str] = {}
    assert secrets_to_environ("hf://datasets/me/runs", read, env, platform) == ["HF_TOKEN"]
    assert env == {"HF_TOKEN": "hf_secret"}
    env = {"AWS_ACCESS_KEY_ID": "mine"}  # already set: kept
    assert secrets_to_environ("s3://bucket/runs", read, env, platform) == ["AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"]
    assert env == {"AWS_ACCESS_KEY_ID": "mine", "AWS_SECRET_ACCESS_KEY": "secret",
                   "AWS_ENDPOINT_URL": "https://s3.example.org"}  # fmt: skip
    assert secrets_to_environ("/content/drive/MyDrive/animegan", read, env, platform) == []  # a folder: none


def test_a_missing_token_is_one_line_naming_where_to_add_it(secrets_modules):
    secrets_modules({"AWS_ACCESS_KEY_ID": "key"})
    env: dict[str, str] = {}
    with pytest.raises(UserError) as e:
        secrets_to_environ("s3://bucket/runs", platform_secret_reader("kaggle"), env, "kaggle")
    assert str(e.value) == ("train.sync s3://bucket/runs needs AWS_SECRET_ACCESS_KEY: add it to Kaggle's Add-ons > "
                            "Secrets (tick it for this notebook), or set the environment variable")  # fmt: skip
    with pytest.raises(UserError, match="needs HF_TOKEN: add it to Colab's Secrets"):
        secrets_to_environ("hf://datasets/me/runs", platform_secret_reader("colab"), {}, "colab")
    assert platform_secret_reader(None)("HF_TOKEN") is None  # off the platforms: the environment only


def test_s3_credentials_from_the_colab_secrets_reach_a_real_s3_endpoint(secrets_modules, tmp_path, monkeypatch):
    pytest.importorskip("s3fs", reason="the sync extra (pip install -e '.[dev]') brings s3fs")
    pytest.importorskip("moto.server", reason="moto[server] comes with the dev extra")
    from bench.s3_server import S3Server

    server = S3Server().start()
    try:
        secrets_modules({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                         "AWS_ENDPOINT_URL": server.endpoint})  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FSSPEC_"))}
        env["AWS_DEFAULT_REGION"] = "us-east-1"
        copied = secrets_to_environ(server.url, platform_secret_reader("colab"), env, "colab")
        assert copied == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"]
        checkpoint = tmp_path / "checkpoint.pt"
        checkpoint.write_bytes(os.urandom(4096))
        publish = ("import sys; from pathlib import Path; from pipeline.train.sync import SyncFolder; "
                   "run = SyncFolder.open(sys.argv[1], {'train.model': 'dcgan'}); "
                   "print(run.publish(Path(sys.argv[2]), 3, {})['file'], run.path)")  # fmt: skip
        done = subprocess.run([sys.executable, "-c", publish, server.url, str(checkpoint)], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        name, folder = done.stdout.split()
        stored = server.fs().cat_file(f"{folder}/{name}")
        assert hashlib.sha256(stored).digest() == hashlib.sha256(checkpoint.read_bytes()).digest()
    finally:
        server.stop()
