"""Typed, strict loading of params.yaml: the only home of defaults.

Usage:
    from pipeline.config import load_params
    params = load_params("params.yaml", overrides=["train.epochs=10", "data.url=file:///tmp/faces.zip"])
    params.train.epochs      # -> 10

Every section is a pydantic model that forbids unknown keys and coerces nothing: an unknown key, a wrong type or
an out-of-range value raises UserError with one line naming the key, before any work starts. Overrides are
`dotted.key=value` with the value parsed as YAML (so `true`, `3`, `0.5`, `[1, 2]` get their natural types).
Sections mirror the stages (data: download + clean, train, sample, eval, detector) plus `paths`, which dvc.yaml
interpolates too, so no output path is written twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import UserError, one_line

PositiveInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PathsParams(Section):
    raw: str
    clean: str
    fid_reference: str
    models: str
    samples: str
    submission: str
    metrics: str
    plots: str
    detector: str


class DataParams(Section):
    url: Annotated[str, Field(min_length=1)]
    sha256: Annotated[str, Field(pattern=r"^([0-9a-f]{64})?$")]
    timeout_s: PositiveFloat
    max_entries: PositiveInt
    max_total_mb: PositiveInt
    image_size: Annotated[int, Field(ge=8, le=1024)]
    min_side: PositiveInt
    max_pixels: PositiveInt
    resample: Literal["lanczos", "bicubic", "bilinear", "box"]
    preview_count: Annotated[int, Field(ge=1, le=1024)]


class TrainParams(Section):
    model: Literal["dcgan"]
    loss: Literal["gan", "wgan", "wgan-gp", "hinge"]
    critic_norm: Literal["batch", "instance", "none"]
    spectral_norm: bool
    z_dim: PositiveInt
    g_features: PositiveInt
    d_features: PositiveInt
    epochs: PositiveInt
    max_steps: NonNegInt
    batch_size: PositiveInt
    optimizer: Literal["adam", "rmsprop"]
    lr_g: PositiveFloat
    lr_d: PositiveFloat
    betas: Annotated[list[Fraction], Field(min_length=2, max_length=2)]
    n_critic: PositiveInt
    clip_value: PositiveFloat
    gp_lambda: NonNegFloat
    reuse_fake: bool
    ema: Annotated[float, Field(ge=0, lt=1)]
    seed: NonNegInt
    deterministic: bool
    bf16: bool
    compile: bool
    channels_last: bool
    checkpoint_every: PositiveInt
    grid_size: Annotated[int, Field(ge=1, le=256)]
    log_every: PositiveInt
    on_mismatch: Literal["refuse", "restart"]


class SampleParams(Section):
    count: PositiveInt
    seed: NonNegInt
    batch_size: PositiveInt
    jpeg_quality: Annotated[int, Field(ge=1, le=100)]
    max_submission_mb: PositiveFloat


class FidParams(Section):
    weights: Annotated[str, Field(min_length=1)]
    sha256: Annotated[str, Field(pattern=r"^([0-9a-f]{64})?$")]
    cache_dir: str
    batch_size: PositiveInt
    reference_count: NonNegInt
    calibration_seed: NonNegInt


class KidParams(Section):
    subsets: PositiveInt
    subset_size: PositiveInt
    seed: NonNegInt
    reference_pool: NonNegInt


class AfdParams(Section):
    detector: Literal["mtcnn", "anime"]
    real_count: NonNegInt
    min_face_prob: Fraction
    mtcnn_thresholds: Annotated[list[Fraction], Field(min_length=3, max_length=3)]
    mtcnn_upscale: PositiveInt
    mtcnn_min_face_size: PositiveInt


class PrdcParams(Section):
    k: PositiveInt
    reference_count: NonNegInt
    seed: NonNegInt


class CopiesParams(Section):
    threshold: NonNegFloat
    calibration_count: Annotated[int, Field(ge=2)]
    quantile: Annotated[float, Field(gt=0, lt=1)]
    seed: NonNegInt
    worst: PositiveInt


class EvalParams(Section):
    repeats: PositiveInt
    fid: FidParams
    kid: KidParams
    prdc: PrdcParams
    copies: CopiesParams
    afd: AfdParams


class DetectorParams(Section):
    seed: NonNegInt
    holdout: Fraction
    calibration: Fraction
    epochs: PositiveInt
    batch_size: Annotated[int, Field(ge=2)]
    lr: PositiveFloat
    target_recall: Fraction
    max_train_faces: NonNegInt


class Params(Section):
    paths: PathsParams
    data: DataParams
    train: TrainParams
    sample: SampleParams
    eval: EvalParams
    detector: DetectorParams


def load_params(path: str | Path = "params.yaml", overrides: list[str] | tuple[str, ...] = ()) -> Params:
    """Read, override and validate params; raise UserError naming the first bad key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"params file not found: {path}") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({one_line(e)})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of sections at the top level")
    for item in overrides:
        apply_override(raw, item)
    return validate(raw, source=str(path))


def validate(raw: dict[str, Any], source: str = "params") -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        got = "" if err["type"] == "missing" else f" (got {err.get('input')!r})"
        raise UserError(f"{source}: {key}: {err['msg']}{got}") from None


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one `a.b.c=value` override in place; only keys that already exist may be set.

    The value is read as YAML (numbers, booleans, lists), except where the current value is text."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise UserError(f"--set {item!r}: expected key.sub=value")
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        raise UserError(f"--set {item!r}: value is not valid YAML") from None
    node = raw
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            raise UserError(f"--set {key}: unknown key {'.'.join(parts[: i + 1])!r}")
        if i == len(parts) - 1:
            # a text key takes the text as written: an all-digit sha256 must not become an int
            node[part] = text if isinstance(node[part], str) and not isinstance(value, str) else value
        else:
            node = node[part]


def to_dict(params: Params) -> dict[str, Any]:
    """Plain-Python view, for YAML/JSON output and provenance."""
    return params.model_dump(mode="json")

