"""R3GAN's training pieces, family-independent: rpgan losses, R1/R2 penalties, lazy regularisation, cosine
schedules, StyleGAN2-ADA EMA ramp-up and seeded flips, each against its formula on hand-made inputs."""

import math

import pytest
import torch
from train_helpers import tiny_faces, tiny_params

from pipeline.data.flips import flip_mask, random_flip
from pipeline.train.ema import GeneratorEMA
from pipeline.train.families import Nets, family_for
from pipeline.train.families.dcgan import Critic
from pipeline.train.losses import critic_loss, generator_loss, zero_centred_penalty
from pipeline.train.schedules import cosine, schedule_at


def test_rpgan_losses_match_the_formula_on_hand_made_logits():
    real = torch.tensor([2.0, -1.0, 0.5])
    fake = torch.tensor([1.0, 1.0, -3.0])
    pairs = [(2.0, 1.0), (-1.0, 1.0), (0.5, -3.0)]  # (real, fake)
    expected_d = sum(math.log1p(math.exp(-(r - f))) for r, f in pairs) / 3
    expected_g = sum(math.log1p(math.exp(-(f - r))) for r, f in pairs) / 3
    assert critic_loss("rpgan", real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    assert generator_loss("rpgan", fake, real).item() == pytest.approx(expected_g, rel=1e-6)
    # pairing, not batch means: shuffling the fakes against the reals changes the loss
    assert critic_loss("rpgan", real, fake.flip(0)).item() != pytest.approx(expected_d, rel=1e-3)
    with pytest.raises(ValueError, match="real scores"):
        generator_loss("rpgan", fake)


def small_critic() -> torch.nn.Module:
    torch.manual_seed(0)
    return Critic(d_features=4, image_size=16, norm="none").double()


def finite_difference_penalty(critic: torch.nn.Module, x: torch.Tensor, eps: float = 1e-6) -> float:
    """mean_i ||grad_x D(x_i)||^2 with the gradient from central differences, one pixel at a time."""
    grads = torch.zeros_like(x)
    flat, g = x.view(-1), grads.view(-1)
    with torch.no_grad():
        for j in range(flat.numel()):
            keep = flat[j].item()
            flat[j] = keep + eps
            up = critic(x).sum().item()
            flat[j] = keep - eps
            down = critic(x).sum().item()
            flat[j] = keep
            g[j] = (up - down) / (2 * eps)
    return grads.square().flatten(1).sum(1).mean().item()


@pytest.mark.parametrize("which", ["r1 on reals", "r2 on fakes"])
def test_r1_and_r2_from_double_backprop_agree_with_finite_differences(which):
    critic = small_critic()
    gen = torch.Generator().manual_seed(1 if which.startswith("r1") else 2)
    x = torch.rand(2, 3, 16, 16, generator=gen, dtype=torch.float64) * 2 - 1
    penalty = zero_centred_penalty(critic, x)
    assert penalty.item() == pytest.approx(finite_difference_penalty(critic, x.clone()), rel=1e-6)

    # and its gradient w.r.t. a weight (the second derivative the critic step trains with) matches too
    weight = critic.l1[0].weight
    (autograd,) = torch.autograd.grad(penalty, weight)
    eps = 1e-6
    for index in [(0, 0, 0, 0), (3, 2, 1, 3)]:
        keep = weight[index].item()
        estimates = []
        for value in (keep + eps, keep - eps):
            with torch.no_grad():
                weight[index] = value
            estimates.append(zero_centred_penalty(critic, x).item())
        with torch.no_grad():
            weight[index] = keep
        up, down = estimates
        assert autograd[index].item() == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-9)


def family_and_nets(tmp_path, *overrides):
    params = tiny_params(tmp_path, "train.loss=rpgan", "train.dcgan.critic_norm=none", *overrides).train
    family = family_for(params, image_size=16, images_per_step=8)
    torch.manual_seed(0)
    g, d = family.build()
    opt_g, opt_d = family.optimizers(g, d, fused=None)
    return params, family, Nets(g, d, opt_g, opt_d)


def test_lazy_regularisation_scales_gamma_by_the_interval_and_skips_between(tmp_path):
    params, family, nets = family_and_nets(tmp_path, "train.gamma=0.5", "train.reg_every=4")
    assert [family.penalty_gamma(0.5, i) for i in range(9)] == [2.0, 0, 0, 0, 2.0, 0, 0, 0, 2.0]
    real = torch.from_numpy(tiny_faces(8)).permute(0, 3, 1, 2).float() / 127.5 - 1
    z = torch.randn(8, params.z_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # what the step will see: the weights before its update
        fake = nets.g(z)
        adversarial = critic_loss("rpgan", nets.d(real), nets.d(fake)).item()
    r1 = zero_centred_penalty(nets.d, real).item()
    r2 = zero_centred_penalty(nets.d, fake).item()
    _, loss, extras = family.critic_step(nets, real, z, torch.Generator(), gamma=0.5, critic_index=4)
    assert extras["r1"].item() == pytest.approx(r1, rel=1e-5) and extras["r2"].item() == pytest.approx(r2, rel=1e-5)
    assert loss.item() == pytest.approx(adversarial + 2.0 / 2 * (r1 + r2), rel=1e-5)  # gamma x 4, half each
    _, loss, extras = family.critic_step(nets, real, z, torch.Generator(), gamma=0.5, critic_index=5)
    assert extras == {}


def test_r1_only_leaves_r2_out(tmp_path):
    params, family, nets = family_and_nets(tmp_path, "train.gamma=1.0", "train.penalties=[r1]")
    real = torch.rand(8, 3, 16, 16) * 2 - 1
    _, _, extras = family.critic_step(nets, real, torch.randn(8, params.z_dim), torch.Generator(), 1.0, 0)
    assert set(extras) == {"r1"}


def test_schedule_values_at_the_first_middle_and_last_step(tmp_path):
    # 8 images a step, schedule over 80 images: step 0 starts, step 5 is half-way, step 10 ends, then it holds
    params = tiny_params(
        tmp_path, "train.lr_g=2.0e-4", "train.lr_g_end=5.0e-5", "train.gamma=2.0", "train.gamma_end=0.2",
        "train.betas=[0.0, 0.9]", "train.beta2_end=0.99", "train.schedule_kimg=0.08",
    ).train  # fmt: skip
    first, middle, last, after = (schedule_at(params, s, images_per_step=8) for s in (0, 5, 10, 25))
    assert (first.lr_g, first.gamma, first.beta2) == (2.0e-4, 2.0, 0.9)
    assert middle.lr_g == pytest.approx(1.25e-4) and middle.gamma == pytest.approx(1.1)
    assert middle.beta2 == pytest.approx(0.945)
    assert (last.lr_g, last.gamma, last.beta2) == pytest.approx((5.0e-5, 0.2, 0.99))
    assert after == last
    assert first.lr_d == middle.lr_d == last.lr_d == params.lr_d  # lr_d_end null: constant
    assert cosine(1.0, 0.0, 0.25) == pytest.approx(0.5 + 0.5 * math.cos(math.pi / 4))


def test_schedule_is_set_on_the_optimizers(tmp_path):
    _, family, nets = family_and_nets(
        tmp_path, "train.lr_d_end=1.0e-5", "train.beta2_end=0.5", "train.schedule_kimg=0.08"
    )
    values = family.apply_schedule(nets, 10)
    assert nets.opt_d.param_groups[0]["lr"] == values.lr_d == pytest.approx(1.0e-5)
    assert nets.opt_g.param_groups[0]["betas"] == (0.5, values.beta2) and values.beta2 == pytest.approx(0.5)


def test_stylegan2_ada_ema_ramp_up():
    g = torch.nn.Linear(2, 2)
    ema = GeneratorEMA(g, ema_kimg=10, rampup=0.05, batch_size=64, images_per_step=64)
    assert ema.decay_at(0) == 0.0  # no images seen: the average is the generator itself
    assert ema.decay_at(100) == pytest.approx(0.5 ** (64 / (100 * 64 * 0.05)))  # half-life 320 images
    assert ema.decay_at(10**6) == pytest.approx(0.5 ** (64 / 10_000))  # capped at ema_kimg * 1000 images
    course = GeneratorEMA(g, 0.999)
    assert course.decay_at(0) == pytest.approx(1 / 10) and course.decay_at(10**6) == 0.999  # unchanged rule


def test_flips_depend_only_on_seed_and_step():
    x = torch.arange(4 * 3 * 2 * 5, dtype=torch.float32).view(4, 3, 2, 5)
    a, b = random_flip(x, 7, 3, 0, rank=0), random_flip(x, 7, 3, 0, rank=0)
    assert torch.equal(a, b)
    mask = flip_mask(7, 3, 0, 4)
    for i in range(4):
        assert torch.equal(a[i], x[i].flip(2) if mask[i] else x[i])
    masks = {tuple(flip_mask(7, s, 0, 64).tolist()) for s in range(5)} | {tuple(flip_mask(8, 3, 0, 64).tolist())}
    assert len(masks) == 6  # other steps, other seed: other flips
    assert 16 < int(flip_mask(7, 3, 0, 64).sum()) < 48
    # two ranks together flip exactly what one process flips: independent of the number of processes
    halves = [random_flip(x[r * 2 : r * 2 + 2], 7, 3, 0, rank=r, world_size=2) for r in (0, 1)]
    assert torch.equal(torch.cat(halves), a)
