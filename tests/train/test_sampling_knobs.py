"""Sampling knobs on a tiny GAN trained here: truncation and the critic's choice keep image i a function of
(seed, draw, i, knobs) alone; truncation off and top_k with k = 1 draw exactly what sampling drew before; a lower
truncation trades recall for precision; bad knobs end in one line (exit 2)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import REPO, SUBPROCESS_ENV, tiny_faces, tiny_params, train_tiny

from pipeline.core.errors import UserError
from pipeline.metrics.prdc import prdc
from pipeline.train.critic_file import load_critic
from pipeline.train.generator_file import load_generator
from pipeline.train.latents import candidate_latents, latents
from pipeline.train.rejection import SamplingKnobs, draw_images
from pipeline.train.sampling import generate, swap_transposed_convs, to_uint8
from stages import sample as sample_stage

STEPS = 40
TOP_K = SamplingKnobs(rejection="top_k", rejection_k=4)
DRS = SamplingKnobs(rejection="drs", rejection_k=6)
TRUNCATED = SamplingKnobs(truncation=0.7)


@pytest.fixture(scope="module")
def trained(module_tmp) -> Path:
    """A tiny DCGAN (BCE, BatchNorm critic) trained STEPS steps, no EMA: generator.pt is the critic's opponent."""
    root = module_tmp("knobs")
    torch.set_num_threads(1)
    train_tiny(root, tiny_faces(), f"train.max_steps={STEPS}", "train.epochs=100", "train.ema=0.0")
    return root


@pytest.fixture(scope="module")
def nets(trained: Path):
    params = tiny_params(trained, f"train.max_steps={STEPS}", "train.epochs=100", "train.ema=0.0")
    critic = load_critic(trained / "models" / "checkpoint.pt", params.train, params.data.image_size)
    return load_generator(trained / "models" / "generator.pt"), critic


def generate_as_before(generator: torch.nn.Module, seed: int, draw: int, count: int) -> np.ndarray:
    """What sampling computed before the knobs: one SeedSequence-seeded torch.randn per image, float64 G."""
    z = torch.empty(count, generator.z_dim)
    gen = torch.Generator()
    for i in range(count):
        state = np.random.SeedSequence([seed, draw, i]).generate_state(2, np.uint32)
        gen.manual_seed(int(state[0]) << 32 | int(state[1]))
        z[i] = torch.randn(generator.z_dim, generator=gen)
    model = copy.deepcopy(generator).double().eval()
    swap_transposed_convs(model)
    with torch.inference_mode():
        return to_uint8(model(z.double()))


def test_truncation_off_draws_exactly_what_sampling_drew_before(nets) -> None:
    generator, critic = nets
    before = generate_as_before(generator, seed=5, draw=1, count=30)
    assert np.array_equal(generate(generator, 5, 1, 30, batch_size=7), before)
    assert np.array_equal(draw_images(generator, None, SamplingKnobs(), 5, 1, 30, batch_size=30).images, before)
    k1 = SamplingKnobs(rejection="top_k", rejection_k=1)  # one candidate: the critic has nothing to choose
    assert np.array_equal(draw_images(generator, critic, k1, 5, 1, 30, batch_size=4).images, before)


def test_top_k_with_one_candidate_equals_no_rejection_under_truncation_too(nets) -> None:
    generator, critic = nets
    k1 = SamplingKnobs(truncation=0.6, rejection="top_k", rejection_k=1)
    plain = draw_images(generator, None, SamplingKnobs(truncation=0.6), 2, 0, 20, batch_size=20).images
    assert np.array_equal(draw_images(generator, critic, k1, 2, 0, 20, batch_size=3).images, plain)


def test_truncation_redraws_only_the_entries_beyond_it() -> None:
    free, cut = latents(1, 0, 0, 50, 64), latents(1, 0, 0, 50, 64, truncation=0.5)
    assert cut.abs().max() <= 0.5 and free.abs().max() > 2
    inside = free.abs() <= 0.5
    assert torch.equal(cut[inside], free[inside])  # kept where already within t
    assert not torch.equal(cut[~inside], free[~inside].clamp(-0.5, 0.5))  # redrawn, not clipped
    first = candidate_latents(1, 0, 0, 50, 64, candidates=3, truncation=0.5)[:, 0]
    assert torch.equal(first, cut)  # candidate 0 is the image's latent without rejection


@pytest.mark.parametrize("knobs", [TRUNCATED, TOP_K, DRS, SamplingKnobs(0.8, "top_k", 3)], ids=str)
def test_image_7_alone_equals_image_7_of_many_for_any_batch(nets, knobs: SamplingKnobs) -> None:
    generator, critic = nets
    many = draw_images(generator, critic, knobs, seed=3, draw=0, count=50, batch_size=16)
    alone = draw_images(generator, critic, knobs, seed=3, draw=0, count=1, batch_size=1, start=7)
    assert many.images.shape == (50, 16, 16, 3)
    assert np.array_equal(alone.images[0], many.images[7])
    other_batch = draw_images(generator, critic, knobs, seed=3, draw=0, count=12, batch_size=5)
    assert np.array_equal(other_batch.images, many.images[:12])


@pytest.mark.parametrize("knobs", [TRUNCATED, TOP_K, DRS], ids=str)
def test_same_seed_same_images_other_seed_or_draw_other_images(nets, knobs: SamplingKnobs) -> None:
    generator, critic = nets
    first = draw_images(generator, critic, knobs, seed=0, draw=0, count=20, batch_size=8).images
    again = draw_images(generator, critic, knobs, seed=0, draw=0, count=20, batch_size=8).images
    assert np.array_equal(first, again)
    for seed, draw in ((1, 0), (0, 1)):
        other = draw_images(generator, critic, knobs, seed=seed, draw=draw, count=20, batch_size=8).images
        assert all(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_top_k_keeps_the_candidate_the_critic_scores_highest(nets) -> None:
    generator, critic = nets
    drawn = draw_images(generator, critic, TOP_K, seed=0, draw=0, count=40, batch_size=16)
    assert np.all(drawn.scores >= drawn.first_scores) and drawn.scores.mean() > drawn.first_scores.mean()
    assert (drawn.scores > drawn.first_scores).sum() >= 20  # candidate 0 is the best of 4 for about a quarter
    # each kept image is its candidate the critic scores highest, scored alone
    z = candidate_latents(0, 0, 0, 40, generator.z_dim, candidates=4).view(160, -1)
    candidates = draw_images_from(generator, z).reshape(40, 4, 16, 16, 3)
    judge = copy.deepcopy(critic.module).double().eval()
    with torch.inference_mode():
        x = torch.from_numpy(candidates.reshape(160, 16, 16, 3)).permute(0, 3, 1, 2).double().div(255).sub(0.5).div(0.5)
        scores = torch.cat([judge(x[i : i + 1]) for i in range(160)]).view(40, 4).numpy()
    np.testing.assert_allclose(drawn.scores, scores.max(axis=1), rtol=1e-9)
    assert np.array_equal(drawn.images, candidates[np.arange(40), scores.argmax(axis=1)])


def draw_images_from(generator: torch.nn.Module, z: torch.Tensor) -> np.ndarray:
    model = copy.deepcopy(generator).double().eval()
    with torch.inference_mode():
        return to_uint8(model(z.double()))


def test_drs_accepts_a_share_and_keeps_a_candidate_of_the_image(nets) -> None:
    generator, critic = nets
    drawn = draw_images(generator, critic, DRS, seed=0, draw=0, count=40, batch_size=12)
    assert 0 < drawn.accepted < 1
    assert drawn.scores.mean() > drawn.first_scores.mean()


def test_lower_truncation_raises_precision_and_lowers_recall(nets) -> None:
    """Reference: the trained generator's own untruncated images (draw 1); features: their pixels. Truncation keeps
    the latents near the centre of the distribution the reference was drawn from, so its images fall inside the
    reference manifold more often (precision up) and cover less of it (recall down). Against the training faces the
    direction need not hold and does not show: after 40 steps no image is near a face (precision 1.0 and recall 0.0
    at every threshold, measured), and a generator's central images need not be its most face-like.
    Measured here: precision 0.63, 0.79, 0.93, 1.00 and recall 0.65, 0.51, 0.23, 0.03 for off, 2.5, 2.0, 1.5."""
    generator, _ = nets
    reference = generate(generator, seed=0, draw=1, count=400, batch_size=200).reshape(400, -1).astype(np.float64)
    precision, recall = [], []
    for t in (0.0, 2.5, 2.0, 1.5):  # off, then lower and lower: about 1%, 5% and 13% of a latent's entries redrawn
        images = generate(generator, seed=0, draw=0, count=400, batch_size=200, truncation=t)
        scores = prdc(reference, images.reshape(400, -1).astype(np.float64), k=3)
        precision.append(scores["precision"])
        recall.append(scores["recall"])
    assert precision == sorted(set(precision)), precision  # strictly rising
    assert recall == sorted(set(recall), reverse=True), recall  # strictly falling


def test_critic_from_other_params_or_another_loss_is_refused(trained: Path, nets) -> None:
    generator, critic = nets
    other = tiny_params(trained, "train.dcgan.critic_norm=instance")
    with pytest.raises(UserError, match=r"trained with train.dcgan.critic_norm 'batch' \(params: 'instance'\)"):
        load_critic(trained / "models" / "checkpoint.pt", other.train, 16)
    hinge = type(critic)(critic.module, critic.step, "hinge")
    with pytest.raises(UserError, match="drs needs a critic trained with train.loss=gan"):
        draw_images(generator, hinge, DRS, 0, 0, 4, 4)


def test_sample_stage_records_the_knobs(trained: Path, tmp_path: Path) -> None:
    params = tiny_params(tmp_path, "sample.count=12", "sample.batch_size=8", "sample.rejection=top_k",
                         "sample.truncation=0.8", f"paths.models={trained / 'models'}")  # fmt: skip
    sample_stage.execute(params)
    metrics = json.loads((tmp_path / "metrics" / "sample.json").read_text())
    assert metrics["truncation"] == 0.8 and metrics["rejection"] == "top_k" and metrics["rejection_k"] == 4
    assert metrics["critic_step"] == STEPS and metrics["critic_mean_kept"] > metrics["critic_mean_first"]
    plain = tiny_params(tmp_path, "sample.count=12", f"paths.models={trained / 'models'}")
    sample_stage.execute(plain)
    metrics = json.loads((tmp_path / "metrics" / "sample.json").read_text())
    assert (metrics["truncation"], metrics["rejection"]) == (0.0, "none") and "critic_step" not in metrics


def generator_only(root: Path, trained: Path) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "models" / "generator.pt").write_bytes((trained / "models" / "generator.pt").read_bytes())
    return root / "models"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (["sample.truncation=-0.5"], "sample.truncation: Input should be greater than or equal to 0"),
        (["sample.rejection_k=0"], "sample.rejection_k: Input should be greater than 0"),
        (["sample.rejection=top_k"], "sample.rejection needs the trained critic, but .*checkpoint.pt is not found"),
        (["sample.rejection=drs", "checkpoint=generator"], "checkpoint.pt holds no critic"),
        (["sample.rejection=best"], "sample.rejection: Input should be 'none', 'top_k' or 'drs'"),
    ],
)  # fmt: skip
def test_bad_knobs_end_in_one_line_through_the_cli(trained: Path, tmp_path: Path, setting, message) -> None:
    models = generator_only(tmp_path, trained)
    if "checkpoint=generator" in setting:  # a generator file where the checkpoint belongs: no critic in it
        (models / "checkpoint.pt").write_bytes((models / "generator.pt").read_bytes())
    sets = [s for s in setting if s != "checkpoint=generator"]
    params = tiny_params(tmp_path, "sample.count=4", f"paths.models={models}")
    args = [a for s in sets for a in ("--set", s)]
    cli = [sys.executable, "-m", "stages.cli", "sample", "--params", str(tmp_path / "params.yaml"), *args]
    done = subprocess.run(cli, cwd=REPO, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert re.search(message, lines[0]), lines[0]
    assert not (Path(params.paths.samples)).exists() and not (Path(params.paths.metrics) / "sample.json").exists()


def test_r3gan_critic_chooses_per_index_and_is_refused_for_drs(tmp_path: Path) -> None:
    """The other family: its critic (no BatchNorm, rpgan objective) loads through the registry; drs refuses it."""
    settings = ["train.model=r3gan", "train.r3gan.preset=tiny", "train.loss=rpgan", "train.max_steps=2", "train.ema=0"]
    train_tiny(tmp_path, tiny_faces(), *settings)
    critic = load_critic(tmp_path / "models" / "checkpoint.pt", tiny_params(tmp_path, *settings).train, 16)
    generator = load_generator(tmp_path / "models" / "generator.pt")
    knobs = SamplingKnobs(0.8, "top_k", 3)
    many = draw_images(generator, critic, knobs, seed=0, draw=0, count=12, batch_size=5)
    alone = draw_images(generator, critic, knobs, seed=0, draw=0, count=1, batch_size=1, start=7)
    assert np.array_equal(alone.images[0], many.images[7]) and np.all(many.scores >= many.first_scores)
    with pytest.raises(UserError, match="trained with 'rpgan': use top_k"):
        draw_images(generator, critic, DRS, 0, 0, 2, 2)
