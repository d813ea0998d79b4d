"""Training batches drawn by index from the clean uint8 faces, held once in memory (on the GPU when there is one).

Usage:
    from pipeline.data.face_batches import FaceBatches
    batches = FaceBatches(faces, device, global_batch=64, rank=0, world_size=1, seed=2022)  # faces: (N, H, W, 3) u8
    real = batches.get(epoch=0, batch_in_epoch=5)   # float (64 / world_size, 3, H, W) in [-1, 1]

Epoch e visits the faces in the order of a permutation seeded by (seed, e); batch b of it is slice
[b * global_batch, (b + 1) * global_batch), of which rank r takes its own contiguous share. The last incomplete
batch is dropped, so every step sees full batches on every rank. Pixel values follow the course's
ToTensor + Normalize(0.5, 0.5): x / 255 then (x - 0.5) / 0.5.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.core.errors import UserError
from pipeline.core.seeding import ORDER, derive_seed, seeded_generator


class FaceBatches:
    def __init__(
        self,
        faces: np.ndarray,
        device: torch.device,
        global_batch: int,
        rank: int,
        world_size: int,
        seed: int,
        channels_last: bool = False,
    ) -> None:
        if global_batch % world_size:
            raise UserError(f"train.batch_size {global_batch} must be a multiple of the {world_size} processes")
        self.count = len(faces)
        self.global_batch = global_batch
        self.per_rank = global_batch // world_size
        self.rank = rank
        self.seed = seed
        self.device = device
        self.channels_last = channels_last
        self.batches_per_epoch = self.count // global_batch
        self.faces = torch.from_numpy(np.ascontiguousarray(faces)).to(device)
        self._order_epoch = -1
        self._order: torch.Tensor | None = None

    def order(self, epoch: int) -> torch.Tensor:
        if epoch != self._order_epoch:
            gen = seeded_generator(derive_seed(self.seed, ORDER, epoch))
            self._order = torch.randperm(self.count, generator=gen).to(self.device)
            self._order_epoch = epoch
        assert self._order is not None
        return self._order

    def get(self, epoch: int, batch_in_epoch: int) -> torch.Tensor:
        start = batch_in_epoch * self.global_batch + self.rank * self.per_rank
        idx = self.order(epoch)[start : start + self.per_rank]
        x = self.faces[idx].permute(0, 3, 1, 2)  # NHWC storage: already channels_last after the permute
        if not self.channels_last:
            x = x.contiguous()
        return x.float().div_(255).sub_(0.5).div_(0.5)
