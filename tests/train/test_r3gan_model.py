"""pipeline.train.families.r3gan: the paper preset's size, shapes at 16/32/64 px, the init rule, the resampler,
generator.pt."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from pipeline.core.errors import UserError
from pipeline.train.families.r3gan import (
    LEAKY_GAIN,
    PRESETS,
    Downsample2x,
    R3Critic,
    R3GANConfig,
    R3Generator,
    ResidualBlock,
    Upsample2x,
    lowpass_kernel,
)
from pipeline.train.generator_file import build_generator, generator_config, load_generator, save_generator
from pipeline.train.sampling import generate


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_preset_has_the_official_ffhq64_parameter_counts():
    # Expected: the official networks, brownvc/R3GAN at commit 19a7ddf, R3GAN/Networks.py Generator and
    # Discriminator built on CPU with train.py's --preset=FFHQ-64 arguments (WidthPerStage [3*x//4 for x in
    # [1024]*4 + [512]], CardinalityPerStage [3*x for x in [32]*4 + [16]], BlocksPerStage [2]*5, ExpansionFactor 2,
    # NoiseDimension 64; D with the three lists reversed), counted with sum(p.numel() for p in m.parameters()).
    # By hand: a block of width C with cardinality k has 4C^2 + 36C^2/k + 4C parameters (2,583,552 at 768/96,
    # 701,952 at 384/48); G = 8 + 2 such blocks + basis 768*16 + z map 64*768 + 1x1 768->384 + to-RGB 384*3;
    # D = the same blocks + from-RGB 3*384 + 1x1 384->768 + head 768*16 + 768.
    g, d = R3Generator("paper", image_size=64), R3Critic("paper", image_size=64)
    assert count(g) == 22_429_824
    assert count(d) == 22_381_440
    assert g.z_dim == 64


@pytest.mark.parametrize("preset", ["tiny", "small", "paper"])
@pytest.mark.parametrize("size", [16, 32, 64])
def test_shapes_at_every_size(preset, size):
    g, d = R3Generator(preset, size), R3Critic(preset, size)
    batch = 1 if preset == "paper" and size == 64 else 2
    with torch.no_grad():
        images = g(torch.randn(batch, 64))
        logits = d(images)
    assert images.shape == (batch, 3, size, size)
    assert logits.shape == (batch,)
    assert torch.isfinite(images).all() and torch.isfinite(logits).all()
    # smaller images drop G's first (coarsest) stages and D's last: one residual stage per resolution from 4x4
    stages = size.bit_length() - 2
    assert len(g.stages) == len(d.stages) == stages
    assert sum(isinstance(m, ResidualBlock) for m in g.modules()) == stages * PRESETS[preset].blocks


def test_fresh_residual_blocks_are_identities_and_init_follows_the_fixup_rule():
    torch.manual_seed(0)
    g, d = R3Generator("small", 16), R3Critic("small", 16)
    for net in (g, d):
        blocks = [m for m in net.modules() if isinstance(m, ResidualBlock)]
        assert len(blocks) == 6  # 3 stages of 2 blocks at 16 px
        for block in blocks:
            assert torch.count_nonzero(block.project.weight) == 0
            x = torch.randn(2, block.expand.in_channels, 8, 8)
            assert torch.equal(block(x), x)
    # the other two layers of a branch: std = leaky-ReLU gain * L^(-1/4) / sqrt(fan_in), with L = 6 blocks here
    block = next(m for m in g.modules() if isinstance(m, ResidualBlock))
    scale = LEAKY_GAIN * 6 ** (-1 / 4)
    assert block.expand.weight.std().item() == pytest.approx(scale / math.sqrt(384), rel=0.01)
    assert block.mix.weight.std().item() == pytest.approx(scale / math.sqrt(16 * 9), rel=0.01)  # 768 / 48 per group
    assert torch.count_nonzero(block.act1.bias) == 0


def test_fresh_generator_is_its_stem_without_residual_branches():
    # with every branch zero, G(z) is the basis, the width changes, the upsamplings and to-RGB alone
    torch.manual_seed(1)
    g = R3Generator("tiny", 32)
    z = torch.randn(3, 64)
    x = g.stages[0][0](z)
    for stage in g.stages[1:]:
        for layer in stage:
            if not isinstance(layer, ResidualBlock):
                x = layer(x)
    assert torch.equal(g.to_rgb(x), g(z))


def test_lowpass_kernel_is_the_1_2_1_filter_combined_with_the_x2_hold():
    line = torch.tensor([1.0, 3.0, 3.0, 1.0])  # [1, 2, 1] convolved with [1, 1]
    assert torch.equal(lowpass_kernel(), torch.outer(line, line) / 64)
    triangle = torch.tensor([1.0, 2.0, 1.0])  # other taps work the same way: [1, 1] * [1, 1] = [1, 2, 1]
    assert torch.equal(lowpass_kernel((1, 1)), torch.outer(triangle, triangle) / 16)


def test_resamplers_keep_a_constant_image_away_from_the_border():
    constant = torch.full((2, 5, 8, 8), 0.7, dtype=torch.float64)
    up, down = Upsample2x()(constant), Downsample2x()(constant)
    assert up.shape == (2, 5, 16, 16) and down.shape == (2, 5, 4, 4)
    assert torch.allclose(up[..., 1:-1, 1:-1], constant[..., :1, :1].expand(2, 5, 14, 14), rtol=0, atol=1e-15)
    assert torch.allclose(down[..., 1:-1, 1:-1], constant[..., :1, :1].expand(2, 5, 2, 2), rtol=0, atol=1e-15)
    # zero padding, as in the official code: a border pixel sees 7/8 (down) or 3/4 (up) of the filter per side
    assert down[0, 0, 0, 1].item() == pytest.approx(0.7 * 7 / 8)
    assert up[0, 0, 0, 1].item() == pytest.approx(0.7 * 3 / 4)


def test_upsampling_is_bilinear_inside_the_image():
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    ours = Upsample2x()(x)
    bilinear = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(ours[..., 1:-1, 1:-1], bilinear[..., 1:-1, 1:-1], rtol=0, atol=1e-12)


def test_downsampling_filters_each_channel_alone():
    x = torch.zeros(1, 3, 8, 8)
    x[0, 1, 4, 4] = 64.0
    y = Downsample2x()(x)
    assert torch.count_nonzero(y[0, 0]) == 0 and torch.count_nonzero(y[0, 2]) == 0
    # the impulse at (4, 4) reaches outputs (1..2, 1..2) with weights 1*1, 1*3, 3*1, 3*3 (of 64)
    assert y[0, 1, 1:3, 1:3].tolist() == [[1.0, 3.0], [3.0, 9.0]]


def test_generator_file_round_trips_exactly(tmp_path):
    torch.manual_seed(2)
    g = R3Generator("tiny", 32)
    with torch.no_grad():  # make every branch non-zero, as after training
        for block in (m for m in g.modules() if isinstance(m, ResidualBlock)):
            block.project.weight.normal_(0, 0.05)
    config = generator_config("r3gan", z_dim=64, image_size=32, preset="tiny")
    assert config == R3GANConfig(preset="tiny", z_dim=64, image_size=32)
    path = tmp_path / "generator.pt"
    save_generator(path, g, config)

    payload = torch.load(path, weights_only=True)
    assert payload["config"] == {"model": "r3gan", "preset": "tiny", "z_dim": 64, "image_size": 32}
    assert set(payload["state_dict"]) == set(g.state_dict())  # the resampling kernels are not saved
    loaded = load_generator(path)
    assert isinstance(loaded, R3Generator) and not loaded.training
    for key, value in g.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    z = torch.randn(4, 64)
    with torch.no_grad():
        assert torch.equal(loaded(z), g.eval()(z))
    images = generate(loaded, seed=0, draw=0, count=3, batch_size=2)
    assert images.shape == (3, 32, 32, 3) and images.dtype.name == "uint8"


def test_generator_file_with_another_preset_is_refused(tmp_path):
    path = tmp_path / "generator.pt"
    config = generator_config("r3gan", z_dim=64, image_size=16, preset="tiny")
    save_generator(path, R3Generator("tiny", 16), dataclasses.replace(config, preset="small"))
    with pytest.raises(UserError, match="weights do not match"):
        load_generator(path)


def test_bad_preset_size_or_config_is_a_user_error():
    with pytest.raises(UserError, match="preset"):
        R3Generator("huge", 32)
    with pytest.raises(UserError, match="image sizes"):
        R3Critic("tiny", 48)
    with pytest.raises(TypeError, match="preset"):
        generator_config("r3gan", z_dim=64, image_size=32)
    with pytest.raises(UserError, match="lacks"):
        build_generator({"model": "r3gan", "z_dim": 64, "image_size": 32})
    with pytest.raises(UserError, match="preset"):
        build_generator({"model": "r3gan", "preset": "huge", "z_dim": 64, "image_size": 32})


def test_tiny_trains_one_step():
    torch.manual_seed(3)
    g, d = R3Generator("tiny", 16), R3Critic("tiny", 16)
    opt = torch.optim.Adam([*g.parameters(), *d.parameters()], lr=1e-3, betas=(0.0, 0.99))
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    z = torch.randn(4, 64)
    before = g(z).detach()
    # relativistic pairing loss for D, then for G (each side's gradient reaches every parameter)
    loss_d = F.softplus(d(g(z).detach()) - d(real)).mean()
    loss_g = F.softplus(d(real) - d(g(z))).mean()
    opt.zero_grad()
    (loss_d + loss_g).backward()
    for name, p in [*g.named_parameters(), *d.named_parameters()]:
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    projects = [m.project.weight.grad for m in [*g.modules(), *d.modules()] if isinstance(m, ResidualBlock)]
    assert all(torch.count_nonzero(grad) > 0 for grad in projects)  # zero-init branches still learn
    opt.step()
    after = g(z).detach()
    assert torch.isfinite(after).all() and not torch.equal(before, after)
