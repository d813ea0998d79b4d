"""Inception features: independent of batch size, equal to pytorch-fid's, and informative with `untrained` weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from pipeline.data.cartoon import cartoon_faces
from pipeline.metrics.fid import FeatureStats, fid_of_features
from pipeline.metrics.inception import _untrained_state, build_fid_inception, extract_features, load_backbone


@pytest.fixture(scope="module")
def backbone():
    """What the pipeline runs on CPU: the Inception blocks rewritten around oneDNN convolutions."""
    return load_backbone("untrained", "", None, calibration_seed=0, timeout_s=1, device="cpu")


@pytest.fixture(scope="module")
def layers_backbone():
    """Each convolution + ReLU one oneDNN call, the blocks as pytorch-fid writes them."""
    return load_backbone("untrained", "", None, calibration_seed=0, timeout_s=1, device="cpu", kernels="onednn")


@pytest.fixture(scope="module")
def eager_backbone():
    """PyTorch's own modules (what a GPU runs), BatchNorm folded, channels_last."""
    return load_backbone("untrained", "", None, calibration_seed=0, timeout_s=1, device="cpu", kernels="eager")


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return cartoon_faces(count=6, size=32, seed=11)


@pytest.fixture(scope="module")
def theirs(faces: np.ndarray) -> np.ndarray:
    """pytorch-fid's own InceptionV3 on the same state dict: its pool3 features of `faces`."""
    import pytorch_fid.inception as pfi

    net = build_fid_inception()
    net.load_state_dict(_untrained_state(0))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pfi, "fid_inception_v3", lambda: net)  # theirs would download the weights from GitHub
        theirs_model = pfi.InceptionV3([3]).eval()
    x = torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255  # what their ToTensor gives
    with torch.no_grad():
        return theirs_model(x)[0].flatten(1).numpy()


def test_cpu_runs_the_fused_onednn_kernels_and_says_so(backbone, layers_backbone, eager_backbone) -> None:
    assert backbone.kernels == "onednn-blocks" and backbone.path()["kernels"] == "onednn-blocks"
    assert eager_backbone.path() == {**backbone.path(), "kernels": "eager"}
    assert layers_backbone.path() == {**backbone.path(), "kernels": "onednn"}
    for b in (backbone, layers_backbone):
        assert not any(isinstance(m, torchvision.models.inception.BasicConv2d) for m in b.model.modules())
    assert any(isinstance(m, torchvision.models.inception.BasicConv2d) for m in eager_backbone.model.modules())
    # the 1x1 convolutions that share an input run as one: 3 per A, C and E block, 2 in Mixed_7a
    heads = [m.head.bias.numel() for m in backbone.model.modules() if hasattr(m, "head")]
    assert heads == [64 + 48 + 64] * 3 + [192 + 128 * 2] + [192 + 160 * 2] * 2 + [192 * 3] + [192 * 2] + [1152] * 2


def test_each_rewritten_block_computes_pytorch_fids_block(backbone, eager_backbone, faces) -> None:
    """Block by block on the activations the network really sees: the fused 1x1 heads, the average pools moved
    after their convolution and the E blocks' single concatenation give the original block's output."""
    ours, theirs = backbone.model.body, eager_backbone.model.body
    inputs: list[torch.Tensor] = []
    hooks = [m.register_forward_pre_hook(lambda m, a: inputs.append(a[0])) for m in theirs]
    try:
        with torch.inference_mode():
            eager_backbone.model(torch.from_numpy(faces))
    finally:
        for h in hooks:
            h.remove()
    rewritten = [i for i, m in enumerate(ours) if type(m).__module__.endswith("inception_onednn")
                 and type(m).__name__.startswith("Block")]  # fmt: skip
    assert len(rewritten) == 11  # Mixed_5b ... Mixed_7c
    with torch.inference_mode():
        for i in rewritten:
            want, got = theirs[i](inputs[i]), ours[i](inputs[i])
            assert got.shape == want.shape and got.is_contiguous(memory_format=torch.channels_last)
            # float rounding: 2.1e-6 of the range seen when torch runs on one thread (oneDNN picks other kernels)
            assert (got - want).abs().max() <= 4e-6 * want.abs().max(), type(theirs[i]).__name__


def _pick(kernels: str, backbone, layers_backbone, eager_backbone):
    return {"onednn-blocks": backbone, "onednn": layers_backbone, "eager": eager_backbone}[kernels]


@pytest.mark.parametrize("kernels", ["onednn-blocks", "onednn", "eager"])
def test_features_do_not_depend_on_batch_size(
    backbone, layers_backbone, eager_backbone, faces: np.ndarray, kernels: str
) -> None:
    net = _pick(kernels, backbone, layers_backbone, eager_backbone)
    whole = extract_features(net, faces, batch_size=6)
    assert whole.shape == (6, 2048) and whole.dtype == np.float32
    np.testing.assert_allclose(extract_features(net, faces, batch_size=4), whole, rtol=0, atol=1e-6)
    np.testing.assert_allclose(extract_features(net, faces[:2], batch_size=1), whole[:2], rtol=0, atol=1e-6)


@pytest.mark.parametrize("kernels", ["onednn-blocks", "onednn", "eager"])
def test_features_equal_pytorch_fids_on_the_same_weights(
    backbone, layers_backbone, eager_backbone, faces, theirs, kernels
) -> None:
    ours = extract_features(_pick(kernels, backbone, layers_backbone, eager_backbone), faces, batch_size=6)
    # BatchNorm folded into the convolutions, the fused kernels, the fused 1x1 convolutions and the pools moved
    # after them change only float rounding.
    assert np.abs(ours - theirs).max() <= 1e-4 * np.abs(theirs).max()
    # ... and the FID between two halves moves by far less than the 1e-4 relative that matters
    ours_fid = fid_of_features(ours[3:], *_moments(ours[:3]))
    theirs_fid = fid_of_features(theirs[3:], *_moments(theirs[:3]))
    assert theirs_fid > 0 and abs(ours_fid - theirs_fid) <= 1e-4 * theirs_fid


def _moments(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    stats = FeatureStats.of(features)
    return stats.mean, stats.cov


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


def test_the_untrained_backbone_is_calibrated_once_and_then_read_from_the_cache(tmp_path, monkeypatch, caplog) -> None:
    import pipeline.metrics.inception as inception

    inception._untrained.cache_clear()
    fresh, fresh_digest = inception._untrained(0, tmp_path)
    (file,) = (tmp_path / "untrained").iterdir()

    def no_calibration(seed):
        raise AssertionError("calibrated again although the cache holds it")

    with monkeypatch.context() as mp:
        mp.setattr(inception, "_calibrated", no_calibration)
        inception._untrained.cache_clear()
        state, digest = inception._untrained(0, tmp_path)  # another process on this machine: the same bits
    assert digest == fresh_digest and state.keys() == fresh.keys()
    assert all(torch.equal(state[k], fresh[k]) for k in fresh)

    file.write_bytes(file.read_bytes()[:1000])  # cut off mid-write by hand: calibrated again and replaced
    inception._untrained.cache_clear()
    _, digest = inception._untrained(0, tmp_path)
    assert digest == fresh_digest and "ignoring unreadable" in caplog.text
    assert torch.load(file, weights_only=True)["digest"] == fresh_digest and len(list(file.parent.iterdir())) == 1

    threads = torch.get_num_threads()
    key = inception._untrained_key(0)
    torch.set_num_threads(threads + 1)  # oneDNN's sums change in the last bits: another file
    try:
        assert inception._untrained_key(0) != key and inception._untrained_key(1) != key
    finally:
        torch.set_num_threads(threads)
        inception._untrained.cache_clear()
