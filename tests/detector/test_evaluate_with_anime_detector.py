"""End to end: the detector stage, then fid_reference -> sample -> evaluate with the default detector, anime.

The FID backbone is `untrained` (pytorch-fid's weights cannot be downloaded here); only the AFD numbers and the
provenance are checked. Real (generated cartoon) faces and a randomly initialised generator, nothing mocked.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.core.config import load_params
from pipeline.core.errors import UserError
from pipeline.data.cartoon import cartoon_faces
from pipeline.metrics.detector.afd_real import real_subset
from pipeline.train.families.dcgan import Generator
from pipeline.train.generator_file import generator_config, save_generator
from stages import detector, evaluate, fid_reference, sample

PARAMS_FILE = Path(__file__).resolve().parents[2] / "params.yaml"


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches on the shared 2-core CI machine run faster on one thread
    yield
    torch.set_num_threads(before)


def test_evaluate_scores_afd_with_the_trained_anime_detector(tmp_path: Path) -> None:
    (tmp_path / "clean").mkdir()
    np.save(tmp_path / "clean" / "faces.npy", cartoon_faces(count=160, size=64, seed=4))
    torch.manual_seed(0)
    untrained = Generator(z_dim=8, g_features=4, image_size=64).eval()
    save_generator(tmp_path / "models" / "generator.pt", untrained, generator_config("dcgan", 8, 4, 64))
    names = ("clean", "fid_reference", "copy_index", "models", "samples", "metrics", "plots", "detector")
    params = load_params(
        PARAMS_FILE,
        [f"paths.{k}={tmp_path / k}" for k in names]
        + [
            f"paths.submission={tmp_path / 'submission.tgz'}",
            "detector.holdout=0.25",
            "detector.calibration=0.25",
            "detector.epochs=4",
            "detector.batch_size=32",
            "detector.target_recall=0.95",
            "detector.max_train_faces=0",
            "sample.count=10",
            "eval.repeats=1",
            "eval.fid.weights=untrained",
            f"eval.fid.cache_dir={tmp_path / 'cache'}",
            "eval.fid.reference_count=12",
            "eval.kid.subsets=2",
            "eval.kid.subset_size=5",
            "eval.afd.real_count=20",  # eval.afd.detector: the default, anime
        ],
    )
    detector.execute(params)
    fid_reference.execute(params)
    sample.execute(params)
    evaluate.execute(params)

    m = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    trained = json.loads((tmp_path / "metrics" / "detector.json").read_text())
    described = m["provenance"]["detector"]
    assert described["name"] == "anime"
    assert described["weights_sha256"] == trained["weights_sha256"]
    assert described["threshold"] == pytest.approx(trained["threshold"], abs=1e-6)
    assert m["afd_real"] >= 0.8  # real faces are found
    # ... among the 40 held-out faces only: its rate on faces it trained on would flatter it
    holdout = np.load(tmp_path / "detector" / "holdout.npy")
    assert len(holdout) == 40 and m["provenance"]["afd_real_from"] == "detector holdout"
    assert m["provenance"]["afd_real_count"] == 20
    assert m["afd"]["mean"] == 0.0  # an untrained generator's noise is not a face
    # afd_real came from the detector stage's afd_real.json; without it evaluate measures the same number
    cached = tmp_path / "detector" / "afd_real.json"
    assert json.loads(cached.read_text())["afd_real"] == m["afd_real"]
    cached.unlink()
    evaluate.execute(params)
    assert json.loads((tmp_path / "metrics" / "eval.json").read_text())["afd_real"] == m["afd_real"]


def test_afd_real_faces_come_only_from_the_given_indices() -> None:
    faces = np.arange(100, dtype=np.uint8).reshape(100, 1, 1, 1)
    unseen = np.array([3, 50, 7, 99, 20])
    assert real_subset(faces, 3, among=unseen).ravel().tolist() == [3, 20, 99]
    assert real_subset(faces, 10, among=unseen).ravel().tolist() == [3, 7, 20, 50, 99]
    assert real_subset(faces, 4).ravel().tolist() == [0, 33, 66, 99]
    with pytest.raises(UserError, match="held-out face indices go up to 120 but there are 100 clean faces"):
        real_subset(faces, 3, among=np.array([1, 120]))
