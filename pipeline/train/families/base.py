"""What every model family implements and shares, and the registry train.model reads (see the package docstring).

Usage:
    from pipeline.train.families.base import FAMILIES, Family, Nets   # a family module subclasses Family
    FAMILIES["mine"] = Mine                                           # and registers itself

Nets holds one training's modules; Family the interface and everything shared by all families (objectives,
optimizers, schedules, EMA, the critic and generator steps); family_for and check_family_params read the registry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from pipeline.core.config import Section, TrainParams
from pipeline.core.errors import UserError
from pipeline.train.augment import Transform, identity
from pipeline.train.ema import GeneratorEMA
from pipeline.train.losses import clip_weights, critic_loss, generator_loss, gradient_penalty, zero_centred_penalty
from pipeline.train.schedules import ScheduleValues, schedule_at


@dataclass
class Nets:
    """One run's modules. g and d are the plain modules: checkpoints hold their tensors, penalties use d."""

    g: nn.Module
    d: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    ema: GeneratorEMA | None = None
    g_train: nn.Module | None = None  # the wrappers (DDP, compile) that train; None: the plain module
    d_train: nn.Module | None = None
    d_frozen: nn.Module | None = None
    autocast: Callable[[], Any] = field(default=contextlib.nullcontext)

    def __post_init__(self) -> None:
        self.g_train = self.g_train or self.g
        self.d_train = self.d_train or self.d
        self.d_frozen = self.d_frozen or self.d

    @property
    def sampler(self) -> nn.Module:
        """The generator later stages sample: the EMA when there is one."""
        return self.ema.module if self.ema is not None else self.g


class Family:
    """One model family: its networks and how they train (see the module docstring for what a subclass declares)."""

    name = ""
    Params: type[Section] | None = None  # the type of train.<name>; None: the family has no params of its own
    Config: type  # frozen dataclass: generator.pt's architecture
    logged: tuple[str, ...] = ("loss_d", "loss_g", "r1", "r2")  # every value critic_step/generator_step report

    def __init__(self, params: TrainParams, image_size: int, images_per_step: int = 1) -> None:
        self.params = params
        self.image_size = image_size
        self.images_per_step = images_per_step
        self.section = family_params(params, self.name)
        self.config = self.make_config()

    def make_config(self) -> Any:
        """This run's Config, from params (self.params, self.section) and the image size."""
        raise NotImplementedError

    def build(self) -> tuple[nn.Module, nn.Module]:
        """The generator and the critic, freshly initialised from the global RNG (generator first)."""
        raise NotImplementedError

    @classmethod
    def generator(cls, config: Any) -> nn.Module:
        """A freshly initialised generator for a Config; it has .z_dim."""
        raise NotImplementedError

    def optimizers(self, g: nn.Module, d: nn.Module, fused: bool | None) -> tuple[torch.optim.Optimizer, ...]:
        p = self.params
        if p.optimizer == "adam":
            betas = tuple(p.betas)
            return tuple(
                torch.optim.Adam(m.parameters(), lr=lr, betas=betas, fused=fused)
                for m, lr in ((g, p.lr_g), (d, p.lr_d))
            )
        return torch.optim.RMSprop(g.parameters(), lr=p.lr_g), torch.optim.RMSprop(d.parameters(), lr=p.lr_d)

    def ema(self, g: nn.Module) -> GeneratorEMA | None:
        p = self.params
        if p.ema_kimg > 0:
            return GeneratorEMA(g, ema_kimg=p.ema_kimg, rampup=p.ema_rampup, batch_size=p.batch_size,
                                images_per_step=self.images_per_step)  # fmt: skip
        return GeneratorEMA(g, p.ema) if p.ema > 0 else None

    def schedule(self, step: int) -> ScheduleValues:
        return schedule_at(self.params, step, self.images_per_step)

    def apply_schedule(self, nets: Nets, step: int) -> ScheduleValues:
        values = self.schedule(step)
        for opt, lr in ((nets.opt_g, values.lr_g), (nets.opt_d, values.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr
                if "betas" in group:
                    group["betas"] = (group["betas"][0], values.beta2)
        return values

    def penalty_gamma(self, gamma: float, critic_index: int) -> float:
        """The R1/R2 weight of this critic step: lazy regularisation runs every reg_every steps with gamma x N."""
        every = self.params.reg_every
        return gamma * every if gamma > 0 and critic_index % every == 0 else 0.0

    def critic_step(
        self, nets: Nets, real: torch.Tensor, z: torch.Tensor, noise: torch.Generator, gamma: float,
        critic_index: int, keep_graph: bool = False, augment: Transform = identity,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
        """One critic update; returns G(z) (with its graph when keep_graph, not augmented), the loss and the
        penalties. The critic, its penalties included, sees augment(real) and augment(fake) (train.augment)."""
        p = self.params
        with nets.autocast():
            with contextlib.nullcontext() if keep_graph else torch.no_grad():
                # float32 like the real batch: under bf16 a bf16 fake made compile build one more critic graph;
                # autocast casts it back to bf16 for the critic's first conv, exactly
                fake = nets.g_train(z).float()
            real_seen, fake_seen = augment(real), augment(fake.detach())
            loss = critic_loss(p.loss, nets.d_train(real_seen), nets.d_train(fake_seen))
            if p.loss == "wgan-gp":
                loss = loss + p.gp_lambda * gradient_penalty(nets.d, real_seen, fake_seen, noise)
        extras: dict[str, torch.Tensor] = {}
        weight = self.penalty_gamma(gamma, critic_index)
        if weight > 0:
            for name, x in (("r1", real_seen), ("r2", fake_seen)):
                if name in p.penalties:
                    extras[name] = zero_centred_penalty(nets.d, x)
                    loss = loss + weight / 2 * extras[name]
        nets.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        nets.opt_d.step()
        if p.loss == "wgan":
            clip_weights(nets.d, p.clip_value)
        return fake, loss.detach(), {k: v.detach() for k, v in extras.items()}

    def generator_step(
        self, nets: Nets, fake: torch.Tensor | None, real: torch.Tensor, z: torch.Tensor,
        augment: Transform = identity,
    ) -> torch.Tensor:
        """One generator update against the frozen critic; fake: the critic step's G(z) with its graph, or None
        to draw G(z) afresh. rpgan pairs the fakes with the real batch's scores. The critic sees them augmented, and
        the generator's gradient flows back through the augmentation."""
        p = self.params
        # the generator step needs gradients w.r.t. images only. Under compile the frozen critic is its own graph
        # anyway (its input needs grad), built once in step 1; frozen weights keep weight gradients out of it
        nets.d.requires_grad_(False)
        with nets.autocast():
            if fake is None:
                fake = nets.g_train(z).float()
            real_scores = nets.d_frozen(augment(real)) if p.loss == "rpgan" else None
            loss = generator_loss(p.loss, nets.d_frozen(augment(fake)), real_scores)
        nets.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        nets.opt_g.step()
        nets.d.requires_grad_(True)
        return loss.detach()


FAMILIES: dict[str, type[Family]] = {}


def family_class(name: Any, key: str = "train.model") -> type[Family]:
    """The registered family of that name; UserError naming key and the families there are."""
    if name not in FAMILIES:
        raise UserError(f"{key}: expected one of {sorted(FAMILIES)}, got {name!r}")
    return FAMILIES[name]


def family_for(params: TrainParams, image_size: int, images_per_step: int = 1) -> Family:
    check_family_params(params)
    return FAMILIES[params.model](params, image_size, images_per_step)


def family_params(params: TrainParams, name: str) -> Section | None:
    """train.<name> checked against the family's Params; UserError naming the key (train.dcgan.g_features: ...)."""
    kind = family_class(name).Params
    if kind is None:
        return None
    section = getattr(params, name, None)
    if section is None:
        raise UserError(f"train.{name}: missing: the {name} family's params (see params.yaml)")
    try:
        return kind.model_validate(section.model_dump())
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        got = "" if err["type"] == "missing" else f" (got {err.get('input')!r})"
        raise UserError(f"train.{name}.{key}: {err['msg']}{got}") from None


def check_family_params(params: TrainParams) -> None:
    """UserError for a train.model no family answers to, a section no family owns, or a family's bad params
    (every family's: the checkpoint's signature holds some of each, see pipeline/train/checkpoint.py)."""
    family_class(params.model)
    for name in params.model_extra or {}:
        if name not in FAMILIES:
            raise UserError(f"train.{name}: no model family is called {name!r} (families: {', '.join(FAMILIES)})")
    for name in FAMILIES:
        family_params(params, name)

