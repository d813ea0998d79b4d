"""Draw images from a generator reproducibly, store them as the course's JPEGs and submission tarball.

Usage:
    from pipeline.train.sampling import generate, jpeg_roundtrip, write_jpegs, read_jpegs, write_submission
    images = generate(generator, seed=0, draw=0, count=1000, batch_size=250)   # uint8 (1000, H, W, 3)
    write_jpegs(images, Path("samples_tmp"), quality=75)                        # 1.jpg .. 1000.jpg
    size = write_submission(Path("samples"), tmp_path)                        # flat tgz, bytes written
    images = read_jpegs(Path("samples"))                                        # decoded back, in 1..N order
    same_as_files = jpeg_roundtrip(images, quality=75)                          # what the files would decode to

The latent of image i of draw d is drawn from a torch.Generator seeded from numpy's SeedSequence([seed, d, i]),
so it depends only on (seed, d, i): never on the batch size, the device, or how many images are drawn
(pipeline.train.latents, which also holds the truncation trick: generate(..., truncation=0.7)). Draw 0 is
the submission; evaluate's repeat draws use d = 1, 2, ... Latents are drawn on the CPU and moved to the device.
The generator runs in float64 (on a copy): in float32 its outputs move by ~1e-7 with the batch size (measured on
this CPU for batch sizes 1, 2, 3 and 5 against 40), enough to flip a pixel's rounding now and then; in float64 the
same images come out for any batch size and device. torch has no fast float64 transposed convolution on the CPU,
so there the generator's ConvTranspose2d layers run as one matrix product per layer plus the k*k taps added into the
output (Float64TransposedConv): 1.5-1.7x faster for the course's DCGAN (bench/results/sample_draws.txt), and
still float64, so the same images.
Outputs in [-1, 1] become uint8 as torchvision's save_image rounds them (the course's sample code).
"""

from __future__ import annotations

import copy
import gzip
import io
import re
import tarfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from pipeline.core.errors import UserError
from pipeline.train.latents import latents

_NUMBERED = re.compile(r"^(\d+)\.jpg$")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3), rounded like torchvision.utils.save_image."""
    x = ((images.clamp(-1, 1) + 1) / 2).mul(255).add(0.5).clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def float64_copy(module: nn.Module, device: str | torch.device) -> nn.Module:
    """A float64 copy of the module in eval mode on `device`, its transposed convolutions swapped on the CPU."""
    model = copy.deepcopy(module).to(device=device, dtype=torch.float64).eval()
    if torch.device(device).type == "cpu":
        swap_transposed_convs(model)
    return model


def generate(
    generator: torch.nn.Module, seed: int, draw: int, count: int, batch_size: int, device: str | torch.device = "cpu",
    truncation: float = 0.0, start: int = 0,
) -> np.ndarray:  # fmt: skip
    """`count` images of `draw` from image `start` on, uint8 (count, H, W, 3); the same for any batch size.
    truncation > 0: BigGAN's truncation trick at that threshold (pipeline.train.latents)."""
    model = float64_copy(generator, device)
    parts = []
    with torch.inference_mode():
        for first in range(start, start + count, batch_size):
            n = min(batch_size, start + count - first)
            z = latents(seed, draw, first, n, generator.z_dim, truncation)
            parts.append(to_uint8(model(z.to(device=device, dtype=torch.float64))))
    return np.concatenate(parts)


class Float64TransposedConv(nn.Module):
    """A float64 nn.ConvTranspose2d (groups 1, no dilation) for inference on the CPU, where torch's own kernel
    multiplies one image at a time and then scatters: here one matrix product covers every pixel of the batch
    (inputs x weights for all k*k taps) and each tap is added into a channels-last output at its stride.
    The output is the layer's, in the layer's (N, C, H, W) shape, with channels-last strides."""

    @staticmethod
    def handles(conv: nn.ConvTranspose2d) -> bool:
        return conv.groups == 1 and conv.dilation == (1, 1) and conv.padding_mode == "zeros"

    def __init__(self, conv: nn.ConvTranspose2d) -> None:
        super().__init__()
        if not self.handles(conv):
            raise ValueError("Float64TransposedConv: groups 1, dilation 1 and zero padding only")
        self.conv = conv
        c_in, c_out, kh, kw = conv.weight.shape
        self.taps = conv.weight.detach().permute(0, 2, 3, 1).reshape(c_in, kh * kw * c_out).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        n, c_in, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
        oph, opw = conv.output_padding
        cols = (x.permute(0, 2, 3, 1).reshape(n * h * w, c_in) @ self.taps).view(n, h, w, kh, kw, -1)
        out = x.new_zeros(n, (h - 1) * sh + kh + oph, (w - 1) * sw + kw + opw, cols.shape[-1])
        for ky in range(kh):
            for kx in range(kw):
                out[:, ky : ky + sh * (h - 1) + 1 : sh, kx : kx + sw * (w - 1) + 1 : sw] += cols[:, :, :, ky, kx]
        out = out[:, ph : out.shape[1] - ph, pw : out.shape[2] - pw]
        if conv.bias is not None:
            out = out + conv.bias
        return out.permute(0, 3, 1, 2)


def swap_transposed_convs(model: nn.Module) -> None:
    """Replace the float64 model's ConvTranspose2d layers that Float64TransposedConv handles, in place."""
    found = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()]
    for parent, name, child in found:
        if (
            isinstance(child, nn.ConvTranspose2d)
            and child.weight.dtype == torch.float64
            and Float64TransposedConv.handles(child)
        ):
            setattr(parent, name, Float64TransposedConv(child))


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def jpeg_roundtrip(images: np.ndarray, quality: int) -> np.ndarray:
    """The pixels the JPEG files of these images decode to, so generated draws compare with the saved samples."""
    return np.stack([decode_image(encode_jpeg(img, quality)) for img in images])


def write_jpegs(images: np.ndarray, folder: Path, quality: int) -> list[Path]:
    """images[k] -> folder/(k+1).jpg, the course's names."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, img in enumerate(images):
        path = folder / f"{k + 1}.jpg"
        path.write_bytes(encode_jpeg(img, quality))
        paths.append(path)
    return paths


def is_numbered_jpeg(name: str) -> bool:
    """True for the names write_jpegs gives (1.jpg, 2.jpg, ...): what the samples folder may hold."""
    return _NUMBERED.match(name) is not None


def numbered_jpegs(folder: Path) -> list[Path]:
    """folder's 1.jpg .. N.jpg in numeric order; UserError when the numbering has gaps or the folder is missing."""
    if not folder.is_dir():
        raise UserError(f"samples folder not found: {folder} (run the sample stage first)")
    found = {int(m.group(1)): p for p in folder.iterdir() if (m := _NUMBERED.match(p.name))}
    if not found or sorted(found) != list(range(1, len(found) + 1)):
        raise UserError(f"{folder}: expected 1.jpg .. N.jpg with no gaps (found {len(found)} numbered files)")
    return [found[i] for i in range(1, len(found) + 1)]


def read_jpegs(folder: Path) -> np.ndarray:
    """Decode folder's 1.jpg .. N.jpg, uint8 (N, H, W, 3)."""
    return np.stack([decode_image(p.read_bytes()) for p in numbered_jpegs(folder)])


def write_submission(folder: Path, target: Path) -> int:
    """Pack folder's 1.jpg .. N.jpg into a gzip tarball at its root (no folder), as the course's
    `tar -zcf ../submission.tgz *.jpg`; byte-identical for identical files. Returns its size. `target` is written
    in place: give it a temporary (pipeline.core.atomic's staged_outputs), as the sample stage does."""
    with open(target, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in numbered_jpegs(folder):
                info = tarfile.TarInfo(path.name)
                info.size = path.stat().st_size
                info.mode = 0o644
                with open(path, "rb") as f:
                    tar.addfile(info, f)
    return Path(target).stat().st_size
