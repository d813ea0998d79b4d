"""pipeline.train.families.dcgan and generator.pt: the course's DCGAN at 64 px exactly, smaller sizes, the file."""

import pytest
import torch

from bench.course import dcgan as course_dcgan
from pipeline.core.errors import UserError
from pipeline.train.families.dcgan import Critic, Generator
from pipeline.train.generator_file import generator_config, load_generator, save_generator


def shapes(module: torch.nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_dcgan_64_is_the_course_architecture():
    g, d = Generator(z_dim=100, g_features=64, image_size=64), Critic(64, 64, norm="batch", sigmoid=True)
    cg, cd = course_dcgan.Generator(100), course_dcgan.Discriminator(3)
    # the notebook's own classes: same parameter and buffer names and shapes, so its G_*.pth loads into ours
    assert shapes(g) == shapes(cg)
    assert shapes(d) == shapes(cd)
    g.load_state_dict(cg.state_dict())
    assert count(g) == count(cg) == 5_142_080  # Linear 819,200 + BN1d 16,384 + ConvT 3,276,800 + ... (spec)
    assert count(d) == count(cd) == 2_766_529
    z = torch.randn(5, 100)
    g.eval(), cg.eval()
    assert torch.equal(g(z), cg(z))
    assert g(z).shape == (5, 3, 64, 64)
    assert d(g(z)).shape == (5,)
    assert [type(m).__name__ for m in d.l1][-1] == "Sigmoid"


def test_course_init_statistics():
    torch.manual_seed(0)
    g = Generator(100, 64, 64)
    conv = g.l2[0][0].weight
    bn = g.l2[0][1]
    assert abs(conv.std().item() - 0.02) < 0.001 and abs(conv.mean().item()) < 0.001
    assert abs(bn.weight.mean().item() - 1) < 0.01 and torch.all(bn.bias == 0)


@pytest.mark.parametrize("size", [16, 32, 64])
@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_sizes_and_critic_options(size, norm):
    g = Generator(z_dim=16, g_features=8, image_size=size)
    d = Critic(8, size, norm=norm, spectral_norm=norm == "none")
    x = g(torch.randn(4, 16))
    assert x.shape == (4, 3, size, size) and x.abs().max() <= 1
    assert d(x).shape == (4,)
    assert not any("Sigmoid" in type(m).__name__ for m in d.modules())


def test_unsupported_size_is_a_user_error():
    with pytest.raises(UserError, match="image sizes"):
        Generator(100, 64, 48)


def test_generator_file_round_trip(tmp_path):
    g = Generator(z_dim=10, g_features=8, image_size=32)
    path = tmp_path / "models" / "generator.pt"
    save_generator(path, g, generator_config("dcgan", 10, 8, 32))
    raw = torch.load(path, weights_only=True)
    assert raw["config"] == {"model": "dcgan", "z_dim": 10, "g_features": 8, "image_size": 32}
    loaded = load_generator(path)
    assert not loaded.training and loaded.z_dim == 10
    g.eval()
    z = torch.randn(3, 10)
    assert torch.equal(loaded(z), g(z))
    assert [p.name for p in path.parent.iterdir()] == ["generator.pt"]  # no temporary left


def test_bad_generator_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_generator(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="not a generator file"):
        load_generator(tmp_path / "junk.pt")
