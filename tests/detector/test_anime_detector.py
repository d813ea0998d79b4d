"""The anime-face detector: a short real training on generated cartoon faces, determinism, and the stage's outputs
as evaluate loads them. Everything runs on CPU on real (generated) images; nothing is mocked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.core.config import load_params
from pipeline.core.errors import UserError
from pipeline.data.cartoon import cartoon_faces
from pipeline.metrics.detector.data import NEGATIVE_KINDS, negatives, to_work
from pipeline.metrics.detector.model import load_detector, load_detector_from
from pipeline.metrics.detector.training import choose_threshold, split_faces, train_classifier
from stages import detector as stage

PARAMS_FILE = Path(__file__).resolve().parents[2] / "params.yaml"
SHORT = [
    "detector.holdout=0.25",
    "detector.calibration=0.25",
    "detector.epochs=4",
    "detector.batch_size=32",
    "detector.lr=0.001",
    "detector.target_recall=0.95",
    "detector.max_train_faces=0",
]


def params_for(root: Path, *extra: str):
    paths = [f"paths.{k}={root / k}" for k in ("clean", "detector", "metrics")]
    return load_params(PARAMS_FILE, [*paths, *SHORT, *extra])


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """On the shared 2-core CI machine two intra-op threads run these small batches several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(module_tmp):
    """Run the detector stage once on 240 cartoon faces; tests below read what it wrote."""
    root = module_tmp("detector")
    (root / "clean").mkdir()
    np.save(root / "clean" / "faces.npy", cartoon_faces(count=240, size=64, seed=3))
    params = params_for(root)
    stage.execute(params)
    return params, root


def test_short_training_finds_faces_and_rejects_every_negative_kind(trained):
    params, root = trained
    metrics = json.loads((root / "metrics" / "detector.json").read_text())
    assert metrics["faces"] == {"train": 120, "calibration": 60, "holdout": 60}
    assert metrics["recall"] >= 0.9
    assert set(metrics["fp_rate"]) == set(NEGATIVE_KINDS)
    assert metrics["fp_rate_max"] <= 0.1, metrics["fp_rate"]
    assert 0 < metrics["threshold"] < 1


def test_load_detector_detects_unseen_faces_and_describes_itself(trained):
    params, root = trained
    detector = load_detector(params)
    unseen = cartoon_faces(count=40, size=96, seed=99)  # another family and size than training
    found = detector.detect(unseen)
    assert found.dtype == bool and found.shape == (40,)
    assert found.mean() >= 0.85
    noise = negatives("noise", to_work(unseen), np.random.default_rng(0)).permute(0, 2, 3, 1).byte().numpy()
    assert detector.detect(noise).mean() <= 0.1
    info = detector.describe()
    metrics = json.loads((root / "metrics" / "detector.json").read_text())
    assert info["name"] == "anime"
    assert info["threshold"] == pytest.approx(metrics["threshold"], abs=1e-6)
    assert info["weights_sha256"] == metrics["weights_sha256"]
    holdout = np.load(root / "detector" / "holdout.npy")
    assert holdout.tolist() == split_faces(240, params.detector).holdout.tolist()


def test_same_seed_gives_the_same_weights_and_another_seed_does_not(tmp_path):
    faces = cartoon_faces(count=48, size=64, seed=5)
    idx = np.arange(48)

    def weights(seed: int) -> dict[str, torch.Tensor]:
        p = params_for(tmp_path, "detector.epochs=1", "detector.batch_size=16", f"detector.seed={seed}").detector
        return train_classifier(faces, idx, p, torch.device("cpu")).state_dict()

    first, again, other = weights(0), weights(0), weights(1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_missing_weights_is_a_one_line_user_error(tmp_path):
    with pytest.raises(UserError, match="run the detector stage") as e:
        load_detector(params_for(tmp_path))
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="clean stage"):
        stage.execute(params_for(tmp_path))


def test_a_truncated_weights_file_is_a_user_error(trained, tmp_path):
    _, root = trained
    broken = tmp_path / "detector"
    broken.mkdir()
    (broken / "meta.json").write_text((root / "detector" / "meta.json").read_text())
    (broken / "detector.pt").write_bytes((root / "detector" / "detector.pt").read_bytes()[:1000])
    with pytest.raises(UserError, match="unreadable"):
        load_detector_from(broken)


def test_threshold_keeps_the_target_share_of_faces():
    scores = np.linspace(0.0, 1.0, 101)
    t = choose_threshold(scores, 0.9)
    assert np.mean(scores >= t) >= 0.9
    assert np.mean(scores >= np.nextafter(t, 2)) < 0.9
