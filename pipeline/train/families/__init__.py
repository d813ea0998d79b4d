"""Model families behind one interface: the training loop asks the family, never the model, what to do.

Usage:
    from pipeline.train.families import Nets, family_for
    family = family_for(params.train, image_size=64)   # train.model picks the family: dcgan, r3gan
    family.section                                     # its own params, train.<name>, checked (None: it has none)
    family.config                                      # its Config: what generator.pt stores (generator_file.py)
    g, d = family.build()                              # plain modules, initialised from the global RNG
    opt_g, opt_d = family.optimizers(g, d, fused=False)
    values = family.apply_schedule(nets, step)         # lr, beta2 and gamma of that step set on the optimizers
    fake, loss_d, extras = family.critic_step(nets, real, z, noise, values.gamma, critic_index)
    loss_g = family.generator_step(nets, fake, real, z)
    family.logged                                      # the names of the values a step logs (loss_d, loss_g, r1..)

A family is data plus the code that differs: a Family subclass with
  - `name`, the value of train.model that picks it;
  - `Params`, the type of its own params section `train.<name>` (a pipeline.core.config.Section; None: no section);
  - `Config`, a frozen dataclass of what rebuilds its generator: generator.pt stores it as a plain dict with the
    family's name, {"model": name, **asdict(config)}, and rebuilds it as Config(**stored) (generator_file.py);
  - `make_config()` (Config from params), `build()` (G and D), `generator(config)` (a fresh G for a Config);
  - `logged`, the values its steps log: the loop's meter refuses any other, so none is lost unseen.
It registers itself in FAMILIES (base.py: the interface and all that families share).
Adding a family takes exactly these four files:
  1. pipeline/train/families/<name>.py, the new module (networks, Params, Config, the Family subclass);
  2. this file: its import line at the end (a literal import, so the dependency test sees what training loads);
  3. params.yaml: its section `train.<name>:` (only when it has Params);
  4. dvc.yaml: `train.<name>` in the train stage's params, so that changing the section retrains.
tests/train/test_families.py checks 3 and 4 for every registered family.
Nothing else names a family: train.model takes any registered name, checkpoints and generator.pt follow the
family's declarations (tests/train/test_families.py trains a family defined in the test itself).
Everything else (the objective train.loss, wgan clipping, wgan-gp, R1/R2 with lazy regularisation, schedules,
optimizers, EMA) is defined once in base.py, from params, so it applies to every family; a family overrides a
method only where it trains differently.

Critic step: the adversarial scores go through nets.d_train (DDP syncs its gradients, compile speeds it); the
gradient penalties differentiate the plain nets.d twice, in float32. Generator step: the critic is frozen
(requires_grad off) and called as nets.d_frozen, without DDP: a frozen critic has no gradients to sync.
"""

from pipeline.train.families.base import (
    FAMILIES,
    Family,
    Nets,
    check_family_params,
    family_class,
    family_for,
    family_params,
)

__all__ = ["FAMILIES", "Family", "Nets", "check_family_params", "family_class", "family_for", "family_params"]

# the families: one import line each (each module registers itself in FAMILIES)
from pipeline.train.families import dcgan, r3gan  # noqa: E402, F401, I001
