"""What a training run costs: the real images it trains on (kimg) and its estimated hours on a T4 and on this CPU.

Usage:
    from pipeline.runs.preset_cost import TrainShape, estimate, hours_text
    cost = estimate(TrainShape(model="dcgan", r3gan_preset="paper", loss="gan", gamma=0.0, epochs=10,
                               batch_size=64, n_critic=1, reg_every=1))
    cost.kimg                        # 713.0: 10 epochs of the course's 71,314 faces, as the loop's plan counts them
    cost.t4_hours                    # (fast, slow): fp32 on one T4, at the high and the low achieved share of its peak
    cost.cpu_hours                   # on the project's 2-core CPU, from its measured training throughput
    hours_text(*cost.t4_hours)       # "10-16 min"

These are ESTIMATES until a GPU run replaces them: time = real images x training FLOPs per real image / achieved
FLOP/s. Nothing here is a hand-typed duration: every figure below is a measurement copied with its source, and
tests/train/test_preset_cost.py checks the copies against those files and the hours against this arithmetic.

- FLOPs per real image (FLOP_ROWS): torch.utils.flop_counter on one training step (critic steps on real and fake
  batches plus the generator step), a multiply-add counted as 2 FLOPs, 64 px. A lazy R1/R2 every k critic steps
  costs without + (with - without) / k (bench/models/flops.py's rule; it reproduces bench.models.cost's count for
  r3gan-tiny with k = 4, 3.894 GFLOP).
- T4: 8.1 TFLOP/s fp32 peak (NVIDIA's T4 datasheet; bf16 is off on a T4, so training runs fp32) at an achieved
  share of 25-40%. Why: NVIDIA's ResNet-50 v1.5 tables (DeepLearningExamples, PyTorch ConvNets) give a T4 428
  images/s fp32 at batch 64 in inference, about 3.5 TFLOP/s = 43% of the peak (8.2 GFLOP per image), and on a V100
  fp32 training reaches about 0.9 of inference's rate (367 against 1,200 images/s at 3x the FLOPs): about 39% for
  a large, well-shaped convnet. GANs at 64 px have small feature maps and BatchNorm/activation passes the count
  leaves out, so 40% is the high end and 25% the low. No T4 run of this project's loop has been timed yet.
- The course's own DCGAN loop took 8:49 per epoch on Colab (about 135 images/s, bound by decoding JPEGs each step;
  the course's HW06 notebook). Ours reads the cleaned faces from memory, so that is a ceiling on its time, not an
  estimate of it.
- This CPU (2 cores, 2 torch threads): the course DCGAN trains at 11.52 images/s in our loop, data included
  (bench/results/train_throughput_cpu.json), i.e. 30.2 GFLOP/s achieved.
- Families differ in how well their FLOPs run: measured in one run (bench/results/model_cost_cpu.json, one thread)
  R3GAN's grouped convolutions achieve 0.41 of the DCGAN's FLOP/s. That ratio is applied on the CPU and, as an
  assumption (grouped convolutions are slow on GPUs too), on the T4.
"""

from __future__ import annotations

from dataclasses import dataclass

COURSE_FACES = 71_314  # the course's faces.zip: 71,314 JPEGs at 96x96; clean keeps all of them at 64 px
T4_PEAK_GFLOPS = 8100.0  # NVIDIA T4 datasheet: 8.1 TFLOP/s single precision
T4_SHARE = (0.40, 0.25)  # achieved share of the peak: fast end, slow end (reasoning in the module docstring)


@dataclass(frozen=True)
class FlopRow:
    """Training GFLOPs per real image of one network and objective at 64 px, with R1/R2 every critic step and
    without them (equal when the objective has none), and where the numbers come from."""

    network: str  # dcgan | r3gan-tiny | r3gan-small | r3gan-paper
    n_critic: int
    gradient_penalty: bool  # WGAN-GP's penalty on every critic step
    gflops: float
    gflops_without_r1r2: float
    source: str


FLOP_ROWS: tuple[FlopRow, ...] = (
    FlopRow("dcgan", 1, False, 2.625, 2.625, "bench/results/model_flops-64px.json rows[dcgan]"),
    FlopRow("dcgan", 2, False, 2.092, 2.092, "bench.models.cost.flops_per_image on the ncritic2 preset, 2026-12-06"),
    FlopRow("dcgan", 2, True, 3.338, 3.338, "bench/results/model_cost_cpu.json models[wgan-gp]"),
    FlopRow("r3gan-tiny", 1, False, 6.231, 3.116, "bench/results/model_flops-64px.json rows[r3gan-tiny]"),
    FlopRow("r3gan-small", 1, False, 175.06, 87.539, "bench/results/model_flops-64px.json rows[r3gan-small]"),
    FlopRow("r3gan-paper", 1, False, 627.271, 313.691, "bench/results/model_flops-64px.json rows[r3gan-paper]"),
)


@dataclass(frozen=True)
class Throughput:
    """A measured training speed: real images per second of a set-up costing gflops per real image."""

    gflops: float
    images_per_s: float
    source: str

    @property
    def achieved_gflops(self) -> float:
        return self.gflops * self.images_per_s


CPU_LOOP = Throughput(2.625, 11.52, "bench/results/train_throughput_cpu.json ours_images_per_s (course DCGAN)")
FAMILY_SPEED: dict[str, Throughput] = {  # one run, one torch thread: the families' FLOP/s relative to each other
    "dcgan": Throughput(2.625, 7.58, "bench/results/model_cost_cpu.json models[dcgan]"),
    "r3gan": Throughput(3.894, 2.09, "bench/results/model_cost_cpu.json models[r3gan-tiny]"),
}


@dataclass(frozen=True)
class TrainShape:
    """The train params that decide a run's cost (values as params.yaml spells them)."""

    model: str
    r3gan_preset: str
    loss: str
    gamma: float
    epochs: int
    batch_size: int
    n_critic: int
    reg_every: int
    faces: int = COURSE_FACES


@dataclass(frozen=True)
class RunCost:
    kimg: float
    gflops_per_image: float
    t4_hours: tuple[float, float]  # fast (high share), slow (low share)
    cpu_hours: float


def flop_row(shape: TrainShape) -> FlopRow:
    network = f"r3gan-{shape.r3gan_preset}" if shape.model == "r3gan" else shape.model
    key = (network, shape.n_critic, shape.loss == "wgan-gp")
    for row in FLOP_ROWS:
        if (row.network, row.n_critic, row.gradient_penalty) == key:
            return row
    raise KeyError(f"no measured training FLOPs for {network} with n_critic {shape.n_critic}, loss {shape.loss}")


def gflops_per_image(shape: TrainShape) -> float:
    """Training GFLOPs per real image; R1/R2 (gamma > 0) every reg_every-th critic step."""
    row = flop_row(shape)
    if shape.gamma <= 0:
        return row.gflops_without_r1r2
    return row.gflops_without_r1r2 + (row.gflops - row.gflops_without_r1r2) / shape.reg_every


def images_seen(shape: TrainShape) -> int:
    """Real images the run trains on: the loop's plan, epochs x (faces // batch // n_critic) steps of
    batch x n_critic images (pipeline.train.plan)."""
    steps_per_epoch = shape.faces // shape.batch_size // shape.n_critic
    return shape.epochs * steps_per_epoch * shape.batch_size * shape.n_critic


def relative_speed(model: str) -> float:
    """The family's achieved FLOP/s as a share of the DCGAN's, measured in one run on the CPU."""
    return FAMILY_SPEED[model].achieved_gflops / FAMILY_SPEED["dcgan"].achieved_gflops


def estimate(shape: TrainShape) -> RunCost:
    images = images_seen(shape)
    gflop = images * gflops_per_image(shape)
    speed = relative_speed(shape.model)
    t4 = tuple(gflop / (T4_PEAK_GFLOPS * share * speed) / 3600 for share in T4_SHARE)
    cpu = gflop / (CPU_LOOP.achieved_gflops * speed) / 3600
    return RunCost(images / 1000, gflops_per_image(shape), (t4[0], t4[1]), cpu)


def hours_text(fast: float, slow: float | None = None) -> str:
    """A duration or a range of two, in the unit that suits the larger: "10-16 min", "1.2-1.9 h", "2,808 h"."""
    hi = fast if slow is None else slow
    values = [fast] if slow is None else [fast, slow]
    if hi < 1:
        unit, scale = "min", 60.0
    elif hi < 10_000:
        unit, scale = "h", 1.0
    else:
        unit, scale = "years", 1 / (24 * 365)
    shown = [v * scale for v in values]
    digits = 1 if max(shown) < 10 else 0
    return "-".join(f"{v:,.{digits}f}" for v in shown) + f" {unit}"
