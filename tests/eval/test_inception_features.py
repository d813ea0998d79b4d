"""Inception features: independent of batch size, equal to pytorch-fid's, and informative with `untrained` weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.cartoon import cartoon_faces
from pipeline.fid import FeatureStats, fid_of_features
from pipeline.inception import _untrained_state, build_fid_inception, extract_features, load_backbone


@pytest.fixture(scope="module")
def backbone():
    return load_backbone("untrained", "", None, calibration_seed=0, timeout_s=1, device="cpu")


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return cartoon_faces(count=6, size=32, seed=11)


def test_features_do_not_depend_on_batch_size(backbone, faces: np.ndarray) -> None:
    whole = extract_features(backbone, faces, batch_size=6)
    assert whole.shape == (6, 2048) and whole.dtype == np.float32
    np.testing.assert_allclose(extract_features(backbone, faces, batch_size=4), whole, rtol=0, atol=1e-6)


def test_features_equal_pytorch_fids_on_the_same_weights(backbone, faces: np.ndarray, monkeypatch) -> None:
    import pytorch_fid.inception as pfi

    net = build_fid_inception()
    net.load_state_dict(_untrained_state(0))
    monkeypatch.setattr(pfi, "fid_inception_v3", lambda: net)  # theirs would download the weights from GitHub
    theirs_model = pfi.InceptionV3([3]).eval()
    x = torch.from_numpy(faces[:4]).permute(0, 3, 1, 2).float() / 255  # what their ToTensor gives
    with torch.no_grad():
        theirs = theirs_model(x)[0].flatten(1).numpy()
    ours = extract_features(backbone, faces[:4], batch_size=4)
    # BatchNorm folded into the convolutions changes only float rounding.
    assert np.abs(ours - theirs).max() <= 1e-4 * np.abs(theirs).max()


def test_untrained_backbone_separates_image_sets(backbone) -> None:
    faces = cartoon_faces(count=12, size=32, seed=21)
    noise = np.random.default_rng(0).integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    f_a = extract_features(backbone, faces[:6], 6)
    f_b = extract_features(backbone, faces[6:], 6)
    f_noise = extract_features(backbone, noise, 6)
    assert f_a.std() > 1e-2  # default BatchNorm statistics would give ~1e-7
    ref = FeatureStats.of(f_a)
    faces_vs_faces = fid_of_features(f_b, ref.mean, ref.cov)
    faces_vs_noise = fid_of_features(f_noise, ref.mean, ref.cov)
    assert faces_vs_noise > 3 * faces_vs_faces > 0
