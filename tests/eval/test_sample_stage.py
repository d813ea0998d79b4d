"""sample: images independent of batch size, the course's file names, a flat deterministic tgz, the size warning."""

from __future__ import annotations

import errno
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from eval_project import REPO, make_project, project_params, tiny_generator

from pipeline.core.atomic import make_temp_file
from pipeline.core.errors import UserError
from pipeline.train.families.dcgan import Generator
from pipeline.train.sampling import (
    Float64TransposedConv,
    generate,
    jpeg_roundtrip,
    latents,
    read_jpegs,
    swap_transposed_convs,
    to_uint8,
)
from stages import sample


def test_latent_of_image_i_depends_only_on_seed_draw_and_i() -> None:
    whole = latents(seed=3, draw=0, start=0, count=10, z_dim=8)
    part = latents(seed=3, draw=0, start=4, count=3, z_dim=8)
    assert np.array_equal(whole[4:7].numpy(), part.numpy())
    assert not np.array_equal(whole.numpy(), latents(seed=3, draw=1, start=0, count=10, z_dim=8).numpy())
    assert not np.array_equal(whole.numpy(), latents(seed=4, draw=0, start=0, count=10, z_dim=8).numpy())


def test_images_do_not_depend_on_batch_size() -> None:
    g = tiny_generator()
    one_batch = generate(g, seed=0, draw=0, count=11, batch_size=11)
    assert one_batch.dtype == np.uint8 and one_batch.shape == (11, 16, 16, 3)
    for batch_size in (1, 2, 3, 5):  # float32 outputs would move by ~1e-7 between these
        assert np.array_equal(generate(g, seed=0, draw=0, count=11, batch_size=batch_size), one_batch)


@pytest.mark.parametrize(
    "shape",
    [  # (c_in, c_out, kernel, stride, padding, output_padding, bias): the course's layer, then other shapes
        (6, 4, 5, 2, 2, 1, False), (3, 5, 4, 2, 1, 0, True), (4, 2, (3, 2), (1, 2), (1, 0), (0, 1), True),
        (2, 3, 3, 3, 0, 2, False),
    ],
)  # fmt: skip
def test_float64_transposed_conv_equals_torch_layer(shape) -> None:
    c_in, c_out, kernel, stride, padding, output_padding, bias = shape
    torch.manual_seed(0)
    layer = torch.nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding, output_padding, bias=bias).double()
    x = torch.randn(3, c_in, 5, 7, dtype=torch.float64)
    with torch.inference_mode():
        want, got = layer(x), Float64TransposedConv(layer)(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("image_size", [16, 32, 64])
def test_generate_draws_what_torch_layers_draw(image_size: int) -> None:
    """The swapped layers give the same images as torch's own float64 ones, with BatchNorm statistics that are not
    the initial ones; the generator handed in keeps its layers."""
    torch.manual_seed(1)
    g = Generator(z_dim=16, g_features=8, image_size=image_size).eval()
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.3, 3.0)
    plain = g.double()
    with torch.inference_mode():
        want = plain(latents(seed=0, draw=2, start=0, count=20, z_dim=16).double())
        swapped = Generator(z_dim=16, g_features=8, image_size=image_size).double().eval()
        swapped.load_state_dict(plain.state_dict())
        swap_transposed_convs(swapped)
        assert any(isinstance(m, Float64TransposedConv) for m in swapped.modules())
        torch.testing.assert_close(swapped(latents(0, 2, 0, 20, 16).double()), want, rtol=1e-12, atol=1e-12)
    assert np.array_equal(generate(g.float(), seed=0, draw=2, count=20, batch_size=7), to_uint8(want))
    assert not any(isinstance(m, Float64TransposedConv) for m in g.modules())


def test_sample_stage_writes_identical_files_for_any_batch_size_and_a_flat_tgz(tmp_path: Path) -> None:
    overrides = make_project(tmp_path, sample_count=11)
    sample.execute(project_params(overrides + ["sample.batch_size=11"]))
    first = {p.name: p.read_bytes() for p in (tmp_path / "samples").iterdir()}
    tgz = (tmp_path / "submission.tgz").read_bytes()

    sample.execute(project_params(overrides + ["sample.batch_size=3"]))
    assert {p.name: p.read_bytes() for p in (tmp_path / "samples").iterdir()} == first
    assert (tmp_path / "submission.tgz").read_bytes() == tgz  # no timestamps inside

    assert sorted(first) == sorted(f"{i}.jpg" for i in range(1, 12))
    with tarfile.open(tmp_path / "submission.tgz", "r:gz") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [f"{i}.jpg" for i in range(1, 12)]  # at the root, no folder
        assert all(m.isfile() for m in members)
        assert all(tar.extractfile(m).read() == first[m.name] for m in members)

    metrics = json.loads((tmp_path / "metrics" / "sample.json").read_text())
    assert metrics["count"] == 11 and metrics["jpeg_quality"] == 75 and metrics["over_limit"] is False
    assert metrics["submission_bytes"] == len(tgz)
    assert (tmp_path / "plots" / "samples_grid.png").is_file()

    # What evaluate reads back as draw 0 is what a fresh draw through the same JPEG round trip gives.
    generated = generate(tiny_generator(), seed=0, draw=0, count=11, batch_size=5)
    assert np.array_equal(read_jpegs(tmp_path / "samples"), jpeg_roundtrip(generated, quality=75))


def test_oversized_submission_is_reported_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    overrides = make_project(tmp_path, sample_count=4)
    with caplog.at_level(logging.WARNING):
        sample.execute(project_params(overrides + ["sample.max_submission_mb=0.0001"]))
    metrics = json.loads((tmp_path / "metrics" / "sample.json").read_text())
    assert metrics["over_limit"] is True
    assert any("over sample.max_submission_mb" in r.getMessage() for r in caplog.records)
    assert (tmp_path / "submission.tgz").is_file()


def test_sample_stage_never_replaces_a_samples_folder_holding_files_it_did_not_write(tmp_path: Path) -> None:
    overrides = make_project(tmp_path, sample_count=4)
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "1.jpg").write_bytes(b"an old sample")  # what the stage writes: may be replaced
    (samples / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds notes.txt, which this stage does not write"):
        sample.execute(project_params(overrides))
    assert sorted(p.name for p in samples.iterdir()) == ["1.jpg", "notes.txt"]
    assert (samples / "1.jpg").read_bytes() == b"an old sample"
    (samples / "notes.txt").unlink()
    sample.execute(project_params(overrides))
    assert sorted(p.name for p in samples.iterdir()) == ["1.jpg", "2.jpg", "3.jpg", "4.jpg"]


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every file and folder under root (hidden temporaries too) with its bytes: equal means untouched."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


def test_a_file_size_limit_while_writing_the_tarball_is_one_line_and_changes_no_output(tmp_path: Path) -> None:
    # RLIMIT_FSIZE (ulimit -f) makes the kernel refuse a write past the limit with EFBIG, as a full disk refuses
    # one with ENOSPC: a real failed write of the real stage, without root or a small filesystem.
    overrides = make_project(tmp_path, sample_count=40)
    sample.execute(project_params(overrides))
    before = _tree(tmp_path)
    limit = max(p.stat().st_size for p in (tmp_path / "samples").iterdir()) + 512  # every JPEG fits, the tgz not
    assert (tmp_path / "submission.tgz").stat().st_size > limit

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    args = [a for o in [*overrides, "sample.seed=1"] for a in ("--set", o)]
    # no bytecode: Python does not check a cache file's write for being cut short, so under the limit it would leave
    # a truncated .pyc in the project's __pycache__, and every later import of that module fails (EOFError)
    done = subprocess.run(
        [sys.executable, "-m", "stages.cli", "sample", "--params", str(REPO / "params.yaml"), *args],
        capture_output=True, text=True, cwd=REPO, preexec_fn=small_files,  # noqa: PLW1509 - only sets a limit
        env=os.environ | {"PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: cannot write") and "file too large" in lines[-1], done.stderr
    assert "Traceback" not in done.stderr
    assert _tree(tmp_path) == before  # samples, tarball, grid and sample.json all as they were, no temporaries


def test_a_read_only_metrics_folder_changes_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    overrides = make_project(tmp_path, sample_count=6)
    sample.execute(project_params(overrides))
    before = _tree(tmp_path)
    metrics = tmp_path / "metrics"
    metrics.chmod(0o555)
    if os.geteuid() == 0:  # root writes into a read-only folder anyway: refuse creating files there as the OS would
        real_open = os.open

        def read_only_open(path, flags, *args, **kwargs):  # noqa: ANN001, ANN202
            if Path(path).parent == metrics and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", read_only_open)
    try:
        with pytest.raises(UserError, match=r"cannot write .*metrics.*permission denied"):
            sample.execute(project_params([*overrides, "sample.seed=1"]))
    finally:
        metrics.chmod(0o755)
    assert _tree(tmp_path) == before


def test_a_sample_run_killed_mid_write_leaves_temporaries_the_next_run_removes(tmp_path: Path) -> None:
    overrides = make_project(tmp_path, sample_count=1500)  # enough JPEGs to kill the stage while it writes them
    args = [a for o in overrides for a in ("--set", o)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "stages.cli", "sample", "--params", str(REPO / "params.yaml"), *args],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".samples.") for p in tmp_path.iterdir()):
        assert proc.poll() is None, proc.stderr.read().decode()[-800:]
        assert time.monotonic() < deadline
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    make_temp_file(tmp_path / "submission.tgz")  # what a kill while the tarball is written leaves, named as its writer
    make_temp_file(tmp_path / "metrics" / "sample.json")
    assert sum(p.name.startswith(".") for p in tmp_path.iterdir()) == 2

    sample.execute(project_params([*overrides, "sample.count=5"]))
    hidden = [p for p in [*tmp_path.iterdir(), *(tmp_path / "metrics").iterdir()] if p.name.startswith(".")]
    assert hidden == []
    assert len(list((tmp_path / "samples").iterdir())) == 5
