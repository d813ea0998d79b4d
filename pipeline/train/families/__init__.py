"""Model families behind one interface: the training loop asks the family, never the model, what to do.

Usage:
    from pipeline.train.families import Nets, family_for
    family = family_for(params.train, image_size=64)   # train.model picks the module: dcgan, r3gan
    g, d = family.build()                              # plain modules, initialised from the global RNG
    family.generator_config()                          # what generator.pt records (pipeline/train/generator_file.py)
    opt_g, opt_d = family.optimizers(g, d, fused=False)
    values = family.apply_schedule(nets, step)         # lr, beta2 and gamma of that step set on the optimizers
    fake, loss_d, extras = family.critic_step(nets, real, z, noise, values.gamma, critic_index)
    loss_g = family.generator_step(nets, fake, real, z)

A family is one module here (dcgan.py, r3gan.py) holding its networks and a Family subclass that defines `build`,
`generator_config`, `file_keys`, `file_config` and `generator_from_config` (what generator.pt stores and how to
rebuild the generator from it), and registers itself in FAMILIES. It is imported by name at the end of this file
(a literal import, so the dependency test sees what training loads): a new family is a new file here, that import
line and its name in params (pipeline/core/config.py's train.model).
Everything else (the objective train.loss, wgan clipping, wgan-gp, R1/R2 with lazy regularisation, schedules,
optimizers, EMA) is defined here once, from params, so it applies to every family; a family overrides a method
only where it trains differently.

Critic step: the adversarial scores go through nets.d_train (DDP syncs its gradients, compile speeds it); the
gradient penalties differentiate the plain nets.d twice, in float32. Generator step: the critic is frozen
(requires_grad off) and called as nets.d_frozen, without DDP: a frozen critic has no gradients to sync.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pipeline.core.config import TrainParams
from pipeline.core.errors import UserError
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
    name = ""

    def __init__(self, params: TrainParams, image_size: int, images_per_step: int = 1) -> None:
        self.params = params
        self.image_size = image_size
        self.images_per_step = images_per_step

    def build(self) -> tuple[nn.Module, nn.Module]:
        raise NotImplementedError

    def generator_config(self) -> dict[str, Any]:
        raise NotImplementedError

    file_keys: tuple[str, ...] = ()  # the keys of generator.pt's config for this family

    @classmethod
    def file_config(cls, z_dim: int, g_features: int, image_size: int, preset: str = "") -> dict[str, Any]:
        """generator.pt's config dict (plain types only) from the architecture arguments this family uses."""
        raise NotImplementedError

    @staticmethod
    def generator_from_config(config: dict[str, Any]) -> nn.Module:
        """A freshly initialised generator for a config from file_config; it has .z_dim."""
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
        critic_index: int, keep_graph: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
        """One critic update; returns G(z) (with its graph when keep_graph), the loss and the penalties."""
        p = self.params
        with nets.autocast():
            with contextlib.nullcontext() if keep_graph else torch.no_grad():
                # float32 like the real batch: under bf16 a bf16 fake made compile build one more critic graph;
                # autocast casts it back to bf16 for the critic's first conv, exactly
                fake = nets.g_train(z).float()
            loss = critic_loss(p.loss, nets.d_train(real), nets.d_train(fake.detach()))
            if p.loss == "wgan-gp":
                loss = loss + p.gp_lambda * gradient_penalty(nets.d, real, fake.detach(), noise)
        extras: dict[str, torch.Tensor] = {}
        weight = self.penalty_gamma(gamma, critic_index)
        if weight > 0:
            for name, x in (("r1", real), ("r2", fake)):
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
        self, nets: Nets, fake: torch.Tensor | None, real: torch.Tensor, z: torch.Tensor
    ) -> torch.Tensor:
        """One generator update against the frozen critic; fake: the critic step's G(z) with its graph, or None
        to draw G(z) afresh. rpgan pairs the fakes with the real batch's scores."""
        p = self.params
        # the generator step needs gradients w.r.t. images only. Under compile the frozen critic is its own graph
        # anyway (its input needs grad), built once in step 1; frozen weights keep weight gradients out of it
        nets.d.requires_grad_(False)
        with nets.autocast():
            if fake is None:
                fake = nets.g_train(z).float()
            real_scores = nets.d_frozen(real) if p.loss == "rpgan" else None
            loss = generator_loss(p.loss, nets.d_frozen(fake), real_scores)
        nets.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        nets.opt_g.step()
        nets.d.requires_grad_(True)
        return loss.detach()


FAMILIES: dict[str, type[Family]] = {}


def family_for(params: TrainParams, image_size: int, images_per_step: int = 1) -> Family:
    if params.model not in FAMILIES:
        raise UserError(f"train.model: expected one of {sorted(FAMILIES)}, got {params.model!r}")
    return FAMILIES[params.model](params, image_size, images_per_step)


from pipeline.train.families import dcgan, r3gan  # noqa: E402, F401  (each registers itself in FAMILIES)
