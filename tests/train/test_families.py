"""Families as data: a family defined in this file trains, logs what it declares and round-trips generator.pt; files
and checkpoints written before the families had sections still load; the registry decides train.model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn
from train_helpers import REPO, TINY, load_state, tiny_faces, tiny_params, train_tiny

from pipeline.core.config import PositiveInt, Section, apply_override, load_params
from pipeline.core.distributed import init_distributed
from pipeline.core.errors import UserError
from pipeline.train.augment import identity
from pipeline.train.checkpoint import save_checkpoint, training_signature
from pipeline.train.families import FAMILIES, Family, family_for
from pipeline.train.families.dcgan import Generator
from pipeline.train.families.r3gan import R3Generator
from pipeline.train.generator_file import load_generator
from pipeline.train.loop import TrainPaths, train_gan
from pipeline.train.meter import Meter
from pipeline.train.resume import faces_digest
from pipeline.train.sync import folder_name


class ToyParams(Section):
    width: PositiveInt


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    z_dim: int
    width: int
    image_size: int


class ToyGenerator(nn.Module):
    def __init__(self, z_dim: int, width: int, image_size: int) -> None:
        super().__init__()
        self.z_dim, self.image_size = z_dim, image_size
        self.net = nn.Sequential(nn.Linear(z_dim, width), nn.ReLU(), nn.Linear(width, 3 * image_size**2), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 3, self.image_size, self.image_size)


class Toy(Family):
    """A third family, declared here and nowhere else: registered by the test, not by an import line."""

    name = "toy"
    Params = ToyParams
    Config = ToyConfig

    def make_config(self) -> ToyConfig:
        return ToyConfig(z_dim=self.params.z_dim, width=self.section.width, image_size=self.image_size)

    def build(self) -> tuple[nn.Module, nn.Module]:
        critic = nn.Sequential(nn.Flatten(), nn.Linear(3 * self.image_size**2, self.section.width), nn.ReLU(),
                               nn.Linear(self.section.width, 1), nn.Flatten(0))  # fmt: skip
        return self.generator(self.config), critic

    @classmethod
    def generator(cls, config: ToyConfig) -> nn.Module:
        return ToyGenerator(config.z_dim, config.width, config.image_size)


class LoudToy(Toy):
    """Logs a value of its own beside the critic's loss."""

    name = "loud"

    def critic_step(self, nets, real, z, noise, gamma, critic_index, keep_graph=False, augment=identity):
        fake, loss, extras = super().critic_step(nets, real, z, noise, gamma, critic_index, keep_graph, augment)
        return fake, loss, {**extras, "fake_std": fake.detach().std()}


def family_params(root: Path, model: str, *overrides: str, sections: dict | None = None):
    """tiny_params with train.model=model and extra family sections (which --set cannot add: they are new keys)."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for key in raw["paths"]:
        raw["paths"][key] = str(root / raw["paths"][key])
    raw["train"].update(sections or {})
    for item in [*TINY, f"train.model={model}", *overrides]:
        apply_override(raw, item)
    path = root / "params.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_params(path)


def train(params, faces: np.ndarray, make_log=None) -> dict:
    models = Path(params.paths.models)
    paths = TrainPaths(checkpoint=models / "checkpoint.pt", generator=models / "generator.pt")
    return train_gan(faces, params.train, paths, init_distributed(), make_log=make_log)


def test_a_family_defined_in_a_test_trains_resumes_and_its_generator_file_loads_back(tmp_path, faces, monkeypatch):
    monkeypatch.setitem(FAMILIES, "toy", Toy)
    params = family_params(tmp_path, "toy", "train.max_steps=2", sections={"toy": {"width": 6}})
    assert train(params, faces)["steps"] == 2
    generator = tmp_path / "models" / "generator.pt"
    payload = torch.load(generator, weights_only=True)
    assert payload["config"] == {"model": "toy", "z_dim": 100, "width": 6, "image_size": 16}
    loaded = load_generator(generator)
    assert isinstance(loaded, ToyGenerator) and not loaded.training
    state = load_state(tmp_path / "models" / "checkpoint.pt")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state["G_ema"].items())  # the EMA is sampled
    assert state["signature"]["train.toy.width"] == 6  # its own params shape the weights: in the signature

    longer = family_params(tmp_path, "toy", "train.max_steps=4", sections={"toy": {"width": 6}})
    assert train(longer, faces)["resumed_from_step"] == 2
    other = family_params(tmp_path, "toy", "train.max_steps=4", sections={"toy": {"width": 7}})
    with pytest.raises(UserError, match=r"train.toy.width: 6 -> 7"):
        train(other, faces)


def test_a_family_logs_what_it_declares_and_an_undeclared_value_is_an_error(tmp_path, faces, monkeypatch):
    monkeypatch.setitem(FAMILIES, "loud", LoudToy)
    params = family_params(tmp_path / "a", "loud", "train.max_steps=1", sections={"loud": {"width": 4}})
    with pytest.raises(ValueError, match=r"logged \['fake_std'\], which its family does not declare"):
        train(params, faces)

    monkeypatch.setattr(LoudToy, "logged", (*Family.logged, "fake_std"), raising=False)
    logged: list[dict] = []

    class Log:
        def metrics(self, step, values):
            logged.append(values)

        def grid(self, name, images):
            pass

    params = family_params(tmp_path / "b", "loud", "train.max_steps=2", sections={"loud": {"width": 4}})
    train(params, faces, make_log=lambda start_step: Log())
    assert len(logged) == 2 and all(0 < values["fake_std"] < 1 for values in logged)


def test_the_meter_refuses_a_value_not_declared():
    meter = Meter(("loss_d", "loss_g"), torch.device("cpu"))
    one = torch.tensor(1.0)
    meter.add({"loss_d": one, "loss_g": one})
    with pytest.raises(ValueError, match=r"\['r1'\]"):
        meter.add({"loss_d": one, "loss_g": one, "r1": one})


def test_train_model_and_family_params_are_checked_by_the_registry(tmp_path):
    with pytest.raises(UserError, match=r"^train.model: expected one of \['dcgan', 'r3gan'\], got 'toy'$"):
        family_for(tiny_params(tmp_path, "train.model=toy").train, 16)
    with pytest.raises(UserError, match=r"^train.dcgan.g_features: Input should be greater than 0 \(got 0\)$"):
        family_for(tiny_params(tmp_path, "train.dcgan.g_features=0").train, 16)
    with pytest.raises(UserError, match=r"^train.r3gan.preset: Input should be 'paper', 'small' or 'tiny'"):
        family_for(tiny_params(tmp_path, "train.r3gan.preset=huge").train, 16)  # every family's, not only the one used
    unknown = family_params(tmp_path, "dcgan", sections={"toy": {"width": 6}})
    with pytest.raises(UserError, match=r"^train.toy: no model family is called 'toy' \(families: dcgan, r3gan\)$"):
        family_for(unknown.train, 16)


def test_every_family_has_its_params_section_and_dvc_retrains_on_it():
    """What a new family's author must add besides the module and its import line (see pipeline/train/families)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())["train"]
    listed = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["train"]["params"]
    for name, family in FAMILIES.items():
        if family.Params is not None:
            assert set(params[name]) == set(family.Params.model_fields), f"params.yaml train.{name}"
            assert f"train.{name}" in listed, f"dvc.yaml: the train stage must list train.{name}"


def test_generator_files_in_the_format_earlier_versions_wrote_load(tmp_path):
    """Written here as the code before the families' Config types wrote them: the same dicts, key for key."""
    torch.manual_seed(0)
    for config, g in (
        ({"model": "dcgan", "z_dim": 10, "g_features": 8, "image_size": 32}, Generator(10, 8, 32)),
        ({"model": "r3gan", "preset": "tiny", "z_dim": 64, "image_size": 16}, R3Generator("tiny", 16, z_dim=64)),
    ):
        path = tmp_path / f"{config['model']}.pt"
        torch.save({"config": config, "state_dict": g.state_dict()}, path)
        loaded = load_generator(path)
        z = torch.randn(2, config["z_dim"])
        with torch.no_grad():
            assert type(loaded) is type(g) and torch.equal(loaded(z), g.eval()(z))
    for config, needle in (
        ({"model": "dcgan", "z_dim": 10, "image_size": 32}, r"lacks \['g_features'\]"),
        ({"model": "dcgan", "z_dim": 10, "g_features": 8, "image_size": 32, "width": 3}, r"unknown \['width'\]"),
        ({"model": "stylegan", "z_dim": 10}, "unknown generator model 'stylegan'"),
    ):
        torch.save({"config": config, "state_dict": {}}, tmp_path / "bad.pt")
        with pytest.raises(UserError, match=needle) as e:
            load_generator(tmp_path / "bad.pt")
        assert "\n" not in str(e.value) and str(tmp_path / "bad.pt") in str(e.value)


# What the version before the families' sections named the sync folders of tiny_params and tiny_faces(): the
# signature, and so the folder and every checkpoint's vetting, must not change with the params' layout.
EARLIER_FOLDERS = {"dcgan": "dcgan-gan-7a38f511eba8ea8e", "r3gan": "r3gan-rpgan-4ee7175c8352eef8"}
EARLIER_KEYS = (
    "model", "r3gan_preset", "loss", "critic_norm", "spectral_norm", "z_dim", "g_features", "d_features", "batch_size",
    "optimizer", "lr_g", "lr_d", "betas", "n_critic", "clip_value", "gp_lambda", "reuse_fake", "ema", "seed",
    "lr_g_end", "lr_d_end", "beta2_end", "schedule_kimg", "gamma", "gamma_end", "penalties", "reg_every",
    "ema_kimg", "ema_rampup", "flip",
)  # fmt: skip


def test_signatures_and_sync_folders_are_those_of_earlier_versions(tmp_path):
    faces = tiny_faces()
    r3gan = ["train.model=r3gan", "train.r3gan.preset=tiny", "train.loss=rpgan"]
    for model, extra in (("dcgan", []), ("r3gan", r3gan)):
        sig = training_signature(tiny_params(tmp_path, *extra).train, 16, faces_digest(faces), len(faces))
        assert list(sig) == [*(f"train.{k}" for k in EARLIER_KEYS), "data.image_size", "faces.sha256", "faces.count"]
        assert folder_name(sig) == EARLIER_FOLDERS[model]


def test_a_checkpoint_with_the_signature_earlier_versions_wrote_resumes(tmp_path, faces):
    train_tiny(tmp_path, faces, "train.max_steps=2")
    params = tiny_params(tmp_path, "train.max_steps=2").train
    flat = {"r3gan_preset": "paper", "critic_norm": "batch", "spectral_norm": False, "g_features": 8, "d_features": 8}
    earlier = {f"train.{k}": flat[k] if k in flat else getattr(params, k) for k in EARLIER_KEYS}
    earlier |= {"train.betas": list(params.betas), "train.penalties": list(params.penalties), "data.image_size": 16,
                "faces.sha256": faces_digest(faces), "faces.count": len(faces)}  # fmt: skip
    path = tmp_path / "models" / "checkpoint.pt"
    state = load_state(path)
    save_checkpoint(path, {**{k: v for k, v in state.items() if k != "format"}, "signature": earlier})
    assert train_tiny(tmp_path, faces, "train.max_steps=4")["resumed_from_step"] == 2
