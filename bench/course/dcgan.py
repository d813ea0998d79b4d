"""The course's sample training loop (NTU ML 2022 HW6 notebook), copied faithfully, for comparison only.

Usage:
    python -m bench.course.dcgan FACES_DIR [--steps 20] [--batch-size 64]    # prints images/s
    from bench.course.dcgan import Generator, Discriminator, course_loop

Kept as the notebook has it: JPEG decoding and resizing per step in a DataLoader (shuffle, 2 workers),
Sigmoid + BCELoss, Adam(1e-4, betas (0.5, 0.999)), D step on G(z) without detach(), a fresh G(z) for the
G step, n_critic 1. Only the notebook's logging, checkpointing and CUDA-only calls are left out; the device is a
parameter. The module names (l1, l2, l3) are the notebook's: pipeline.train.families.dcgan matches them.
"""

from __future__ import annotations

import argparse
import glob
import os
import time

import torch
import torch.nn as nn
import torchvision
import torchvision.transforms as transforms
from torch.utils.data import DataLoader, Dataset


class CrypkoDataset(Dataset):
    def __init__(self, fnames, transform):
        self.transform = transform
        self.fnames = fnames
        self.num_samples = len(self.fnames)

    def __getitem__(self, idx):
        fname = self.fnames[idx]
        img = torchvision.io.read_image(fname)
        img = self.transform(img)
        return img

    def __len__(self):
        return self.num_samples


def get_dataset(root):
    fnames = glob.glob(os.path.join(root, "*"))
    compose = [
        transforms.ToPILImage(),
        transforms.Resize((64, 64)),
        transforms.ToTensor(),
        transforms.Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    ]
    transform = transforms.Compose(compose)
    dataset = CrypkoDataset(fnames, transform)
    return dataset


def weights_init(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        m.weight.data.normal_(0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        m.weight.data.normal_(1.0, 0.02)
        m.bias.data.fill_(0)


class Generator(nn.Module):
    """Input shape: (batch, in_dim); output shape: (batch, 3, 64, 64)"""

    def __init__(self, in_dim, feature_dim=64):
        super().__init__()
        self.l1 = nn.Sequential(
            nn.Linear(in_dim, feature_dim * 8 * 4 * 4, bias=False),
            nn.BatchNorm1d(feature_dim * 8 * 4 * 4),
            nn.ReLU(),
        )
        self.l2 = nn.Sequential(
            self.dconv_bn_relu(feature_dim * 8, feature_dim * 4),
            self.dconv_bn_relu(feature_dim * 4, feature_dim * 2),
            self.dconv_bn_relu(feature_dim * 2, feature_dim),
        )
        self.l3 = nn.Sequential(
            nn.ConvTranspose2d(feature_dim, 3, kernel_size=5, stride=2, padding=2, output_padding=1, bias=False),
            nn.Tanh(),
        )
        self.apply(weights_init)

    def dconv_bn_relu(self, in_dim, out_dim):
        return nn.Sequential(
            nn.ConvTranspose2d(in_dim, out_dim, kernel_size=5, stride=2, padding=2, output_padding=1, bias=False),
            nn.BatchNorm2d(out_dim),
            nn.ReLU(True),
        )

    def forward(self, x):
        y = self.l1(x)
        y = y.view(y.size(0), -1, 4, 4)
        y = self.l2(y)
        y = self.l3(y)
        return y


class Discriminator(nn.Module):
    """Input shape: (batch, 3, 64, 64); output shape: (batch)"""

    def __init__(self, in_dim, feature_dim=64):
        super().__init__()
        self.l1 = nn.Sequential(
            nn.Conv2d(in_dim, feature_dim, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            self.conv_bn_lrelu(feature_dim, feature_dim * 2),
            self.conv_bn_lrelu(feature_dim * 2, feature_dim * 4),
            self.conv_bn_lrelu(feature_dim * 4, feature_dim * 8),
            nn.Conv2d(feature_dim * 8, 1, kernel_size=4, stride=1, padding=0),
            nn.Sigmoid(),
        )
        self.apply(weights_init)

    def conv_bn_lrelu(self, in_dim, out_dim):
        return nn.Sequential(
            nn.Conv2d(in_dim, out_dim, 4, 2, 1),
            nn.BatchNorm2d(out_dim),
            nn.LeakyReLU(0.2),
        )

    def forward(self, x):
        y = self.l1(x)
        y = y.view(-1)
        return y


def course_loop(root, steps, batch_size=64, z_dim=100, lr=1e-4, n_critic=1, warmup=2, device="cpu"):
    """Train `steps` iterations the notebook's way; return images/s over the steps after `warmup`."""
    dataset = get_dataset(root)
    dataloader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=2)
    G = Generator(in_dim=z_dim).to(device)
    D = Discriminator(3).to(device)
    loss = nn.BCELoss()
    opt_D = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    G.train()
    D.train()
    step, t0 = 0, None
    while step < steps + warmup:
        for data in dataloader:
            if step == warmup:
                t0 = time.perf_counter()
            if step == steps + warmup:
                break
            imgs = data.to(device)
            bs = imgs.size(0)
            z = torch.randn(bs, z_dim).to(device)
            r_imgs = imgs
            f_imgs = G(z)
            r_label = torch.ones(bs).to(device)
            f_label = torch.zeros(bs).to(device)
            r_logit = D(r_imgs)
            f_logit = D(f_imgs)
            r_loss = loss(r_logit, r_label)
            f_loss = loss(f_logit, f_label)
            loss_D = (r_loss + f_loss) / 2
            D.zero_grad()
            loss_D.backward()
            opt_D.step()
            if step % n_critic == 0:
                z = torch.randn(bs, z_dim).to(device)
                f_imgs = G(z)
                f_logit = D(f_imgs)
                loss_G = loss(f_logit, r_label)
                G.zero_grad()
                loss_G.backward()
                opt_G.step()
            step += 1
    elapsed = time.perf_counter() - t0
    return {"images_per_s": steps * batch_size / elapsed, "steps": steps, "seconds": elapsed,
            "loss_d": loss_D.item(), "loss_g": loss_G.item()}  # fmt: skip


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("faces_dir")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    print(course_loop(args.faces_dir, args.steps, args.batch_size))
