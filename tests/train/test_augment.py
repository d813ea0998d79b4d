"""train.augment (pipeline/train/augment.py): each transform against what it must do to a real image, seeded draws,
gradients through it, and tiny trainings with it on: applied, resumed exactly, part of the checkpoint's signature."""

import pytest
import torch
from train_helpers import checkpoint_of, tiny_faces, train_tiny

from pipeline.core.config import apply_override, load_params
from pipeline.core.errors import UserError
from pipeline.train.augment import augmentation, identity

ALL = ["color", "translation", "cutout"]


@pytest.fixture
def images():
    faces = torch.from_numpy(tiny_faces(count=32, size=16, seed=3)).permute(0, 3, 1, 2).float()
    return faces / 127.5 - 1


def test_no_policy_is_the_identity_itself():
    assert augmentation([], seed=1, step=0, rank=0) is identity  # training without it is unchanged bit for bit


def test_draws_depend_on_seed_step_and_rank_only(images):
    first = augmentation(ALL, seed=1, step=5, rank=0)(images)
    assert torch.equal(first, augmentation(ALL, seed=1, step=5, rank=0)(images))
    assert torch.equal(first, augmentation(list(reversed(ALL)), seed=1, step=5, rank=0)(images))  # fixed order
    for other in ((2, 5, 0), (1, 6, 0), (1, 5, 1)):
        seed, step, rank = other
        assert not torch.equal(first, augmentation(ALL, seed=seed, step=step, rank=rank)(images)), other


def test_translation_shifts_each_image_by_at_most_an_eighth_with_zeros_coming_in(images):
    shifted = augmentation(["translation"], seed=4, step=0, rank=0)(images)
    offsets = set()
    for x, y in zip(images, shifted, strict=True):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if torch.equal(y, _crop(x, dy, dx))]
        assert found, "not a shifted copy"
        offsets.add(found[0])
    assert len(offsets) > 5  # each image its own shift


def _crop(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """x shifted so that pixel (i, j) reads x[i + dy, j + dx], zeros outside."""
    padded = torch.nn.functional.pad(x, [2, 2, 2, 2])
    return padded[:, 2 + dy : 18 + dy, 2 + dx : 18 + dx]


def test_cutout_zeroes_one_square_of_half_the_side_and_keeps_the_rest(images):
    cut = augmentation(["cutout"], seed=4, step=0, rank=0)(images + 3)  # +3: no pixel is zero before
    for x, y in zip(images + 3, cut, strict=True):
        zero = (y == 0).all(0)
        assert torch.equal(y[:, ~zero], x[:, ~zero])
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert 1 <= len(rows) <= 8 and 1 <= len(cols) <= 8  # 8 x 8 at most, less where it reaches past the border
        assert int(zero.sum()) == len(rows) * len(cols)  # one rectangle
    assert int((cut == 0).all(1).flatten(1).sum(1).min()) >= 16  # its centre is inside: at least a quarter shows


def test_color_changes_brightness_saturation_and_contrast_per_image(images):
    out = augmentation(["color"], seed=4, step=0, rank=0)(images)
    assert out.shape == images.shape
    assert len({round(float(d), 4) for d in (out - images).mean((1, 2, 3))}) == len(images)


def test_gradients_flow_through_every_policy(images):
    x = images.clone().requires_grad_(True)
    augmentation(ALL, seed=1, step=0, rank=0)(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_training_with_augmentation_is_applied_and_resumes_exactly(tmp_path):
    faces = tiny_faces()
    train_tiny(tmp_path / "plain", faces, "train.max_steps=4")
    train_tiny(tmp_path / "long", faces, "train.max_steps=4", "train.augment=[translation,cutout,color]")
    train_tiny(tmp_path / "grown", faces, "train.max_steps=2", "train.augment=[translation,cutout,color]")
    train_tiny(tmp_path / "grown", faces, "train.max_steps=4", "train.augment=[translation,cutout,color]")
    plain, long, grown = (checkpoint_of(tmp_path / name) for name in ("plain", "long", "grown"))
    assert all(torch.equal(long["G"][k], grown["G"][k]) for k in long["G"])
    assert not all(torch.equal(long["G"][k], plain["G"][k]) for k in long["G"])
    assert long["signature"]["train.augment"] == ["color", "cutout", "translation"]
    assert "train.augment" not in plain["signature"]  # earlier checkpoints' signatures are unchanged
    with pytest.raises(UserError, match="train.augment"):  # the same run without it is another run
        train_tiny(tmp_path / "long", faces, "train.max_steps=6")


def test_an_unknown_policy_is_one_line_naming_the_key(tmp_path):
    import yaml
    from train_helpers import REPO

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    apply_override(raw, "train.augment=[flip]")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError) as caught:
        load_params(tmp_path / "params.yaml")
    message = str(caught.value)
    assert message.endswith("train.augment.0: Input should be 'color', 'translation' or 'cutout' (got 'flip')")
    assert "\n" not in message
