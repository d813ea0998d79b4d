"""Typed, strict loading of params.yaml: the only home of defaults.

Usage:
    from pipeline.core.config import load_params
    params = load_params("params.yaml", overrides=["train.epochs=10", "data.url=file:///tmp/faces.zip"])
    params.train.epochs      # -> 10

Every section is a pydantic model that forbids unknown keys and coerces nothing: an unknown key, a wrong type or
an out-of-range value raises UserError with one line naming the key, before any work starts. Overrides are
`dotted.key=value` with the value parsed as YAML (so `true`, `3`, `0.5`, `[1, 2]` get their natural types).
Sections mirror the stages (data: download + clean, train, sample, eval, detector) plus `paths`, which dvc.yaml
interpolates too, so no output path is written twice.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, ValidationError

from pipeline.core.errors import UserError, one_line
from pipeline.core.outputs import STAGE_FILES

# YAML 1.1 (PyYAML) reads `1e-4` (no dot) as text; a float field takes such text as the number people mean.
_DECIMAL = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _number_text(value: Any) -> Any:
    return float(value) if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()) else value


Float = Annotated[float, BeforeValidator(_number_text)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[Float, Field(gt=0)]
NonNegFloat = Annotated[Float, Field(ge=0)]
Fraction = Annotated[Float, Field(ge=0, le=1)]


def _legacy_speed_mode(value: Any) -> Any:
    """Params files from before the modes said true/false, and true meant: on CUDA only."""
    if isinstance(value, bool):
        return "cuda" if value else "never"
    if isinstance(value, str) and value.lower() in ("true", "false"):  # `--set train.bf16=true` arrives as text
        return "cuda" if value.lower() == "true" else "never"
    return value


# Where a speed option applies (pipeline/core/speed.py): cuda (CUDA devices only), always (CPU too), never.
SpeedMode = Annotated[Literal["cuda", "always", "never"], BeforeValidator(_legacy_speed_mode)]


def _process_count(value: Any) -> int | str:
    """A count of processes (1, 2, ...) or "auto"; the text "2" too (`--set train.processes=2` over a params.yaml
    that holds `auto` arrives as text)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ValueError("expected a number of processes (1, 2, ...) or auto")


# How many training processes (pipeline/core/launch.py): N, or auto (every visible GPU; one process elsewhere).
ProcessCount = Annotated[int | str, PlainValidator(_process_count)]

# Where train, sample, detector, fid_reference and evaluate run (pipeline/core/device.py).
DeviceSetting = Annotated[str, Field(pattern=r"^(auto|cpu|mps|cuda(:[0-9]+)?)$")]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PathsParams(Section):
    raw: str
    clean: str
    fid_reference: str
    copy_index: str
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


class FamilyParams(Section):
    """One model family's own params, `train.<family>` (train.dcgan, train.r3gan): their keys and types are the
    family's (its module in pipeline/train/families checks them when training starts), so adding a family adds no
    line here."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


# Family params that were flat train keys before each family had its own section: named in the one-line error.
MOVED_TRAIN_KEYS = {
    "r3gan_preset": "r3gan.preset",
    "critic_norm": "dcgan.critic_norm",
    "spectral_norm": "dcgan.spectral_norm",
    "g_features": "dcgan.g_features",
    "d_features": "dcgan.d_features",
}


class TrainParams(Section):
    """The training loop's params; each model family's own params are a section below: `train.dcgan`, ...

    model names a family registered in pipeline/train/families (checked when training starts: the registry is the
    train room's). params.train.dcgan is that section (FamilyParams); any other unknown key is refused."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)
    __pydantic_extra__: dict[str, FamilyParams] = Field(init=False)

    model: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    loss: Literal["gan", "wgan", "wgan-gp", "hinge", "rpgan"]
    z_dim: PositiveInt
    epochs: PositiveInt
    max_steps: NonNegInt
    max_minutes: NonNegFloat | None  # 0 or None: no time budget (pipeline/train/budget.py)
    processes: ProcessCount
    batch_size: PositiveInt
    optimizer: Literal["adam", "rmsprop"]
    lr_g: PositiveFloat
    lr_d: PositiveFloat
    betas: Annotated[list[Fraction], Field(min_length=2, max_length=2)]
    lr_g_end: PositiveFloat | None
    lr_d_end: PositiveFloat | None
    beta2_end: Fraction | None
    schedule_kimg: PositiveFloat
    n_critic: PositiveInt
    clip_value: PositiveFloat
    gp_lambda: NonNegFloat
    gamma: NonNegFloat
    gamma_end: NonNegFloat | None
    penalties: Annotated[list[Literal["r1", "r2"]], Field(min_length=1, max_length=2)]
    reg_every: PositiveInt
    reuse_fake: bool
    ema: Annotated[Float, Field(ge=0, lt=1)]
    ema_kimg: NonNegFloat
    ema_rampup: NonNegFloat
    flip: bool
    augment: Annotated[list[Literal["color", "translation", "cutout"]], Field(max_length=3)]  # train/augment.py
    seed: NonNegInt
    deterministic: bool
    bf16: SpeedMode
    compile: SpeedMode
    channels_last: SpeedMode
    fused_adam: SpeedMode
    checkpoint_every: PositiveInt
    grid_size: Annotated[int, Field(ge=1, le=256)]
    log_every: PositiveInt
    on_mismatch: Literal["refuse", "restart"]
    sync: str
    sync_stale_s: NonNegFloat
    resume_from: str
    snapshot_kimg: NonNegFloat  # 0: off (pipeline/train/snapshots.py)
    snapshot_metrics: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    snapshot_count: Annotated[int, Field(ge=2)]
    select_by: Annotated[str, Field(min_length=1)]
    patience: NonNegInt  # 0: off


class SampleParams(Section):
    count: PositiveInt
    seed: NonNegInt
    batch_size: PositiveInt
    jpeg_quality: Annotated[int, Field(ge=1, le=100)]
    max_submission_mb: PositiveFloat
    truncation: NonNegFloat  # 0: off (pipeline/train/latents.py)
    rejection: Literal["none", "top_k", "drs"]  # pipeline/train/rejection.py
    rejection_k: PositiveInt
    snapshot: Literal["best", "last"]  # pipeline/train/best_file.py


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
    bf16: SpeedMode  # the Inception and detector forward passes (pipeline/core/speed.py)
    compile: SpeedMode
    channels_last: SpeedMode
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
    device: DeviceSetting
    data: DataParams
    train: TrainParams
    sample: SampleParams
    eval: EvalParams
    detector: DetectorParams


def load_params(path: str | Path = "params.yaml", overrides: list[str] | tuple[str, ...] = ()) -> Params:
    """Read, override and validate params; raise UserError naming the first bad key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        check_unique_keys(text, str(path))
        raw = yaml.safe_load(text)
    except FileNotFoundError:
        raise UserError(f"params file not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"--params {path} is a folder, not a params file") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    except OSError as e:
        raise UserError(f"cannot read params file {path}: {e.strerror or one_line(e)}") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({one_line(e)})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of sections at the top level")
    for item in overrides:
        apply_override(raw, item)
    return validate(raw, source=str(path))


def check_unique_keys(text: str, source: str) -> None:
    """UserError naming a key given twice in one mapping and both its lines: YAML keeps the later value silently,
    which hides a mistake in params edited by hand or merged across branches."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    todo: list[tuple[str, yaml.Node]] = [("", root)] if root is not None else []
    while todo:
        where, node = todo.pop()
        if isinstance(node, yaml.SequenceNode):
            todo += [(f"{where}[{i}]", item) for i, item in enumerate(node.value)]
        if not isinstance(node, yaml.MappingNode):
            continue
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = f"{where}.{key.value}" if where else str(key.value)
            line = key.start_mark.line + 1
            if name in seen:
                raise UserError(f"{source}: {name} is given twice (lines {seen[name]} and {line}): keep one")
            seen[name] = line
            todo.append((name, value))


def validate(raw: dict[str, Any], source: str = "params") -> Params:
    check_train_keys(raw.get("train"), source)
    try:
        params = Params.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        got = "" if err["type"] == "missing" else f" (got {err.get('input')!r})"
        raise UserError(f"{source}: {key}: {err['msg']}{got}") from None
    check_runnable(params, source)
    check_output_paths(params, source)
    check_sync_folder(params, source)
    check_resume_source(params, source)
    return params


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
            where = ".".join(parts[: i + 1])
            if where.startswith("train.") and where[6:] in MOVED_TRAIN_KEYS:
                raise UserError(f"--set {key}: {moved(where)}")
            raise UserError(f"--set {key}: unknown key {where!r}")
        if i == len(parts) - 1:
            # a text key takes the text as written: an all-digit sha256 must not become an int
            node[part] = text if isinstance(node[part], str) and not isinstance(value, str) else value
        else:
            node = node[part]


def moved(key: str) -> str:
    """The error's text for a flat train key that moved into its family's section."""
    return f"{key} is now train.{MOVED_TRAIN_KEYS[key.removeprefix('train.')]} (each model family has its own section)"


def check_train_keys(train: Any, source: str) -> None:
    """UserError for a moved flat key, or an unknown train key that is not a mapping (a family's section is one):
    train's extra keys are the families' sections, so pydantic alone would call a typo a malformed section."""
    if not isinstance(train, dict):
        return
    for key, value in train.items():
        if key in MOVED_TRAIN_KEYS:
            raise UserError(f"{source}: {moved(f'train.{key}')}")
        if key not in TrainParams.model_fields and not isinstance(value, dict):
            raise UserError(f"{source}: train.{key}: Extra inputs are not permitted (got {value!r})")


def to_dict(params: Params) -> dict[str, Any]:
    """Plain-Python view, for YAML/JSON output and provenance."""
    return params.model_dump(mode="json")



# ---------- Checks across fields: values each field takes alone but the stages cannot run or must not write ----------


def check_runnable(params: Params, source: str = "params") -> None:
    """UserError for values the schema takes but a stage would fail on, minutes in, with a traceback."""
    if params.train.batch_size < 2:
        raise UserError(f"{source}: train.batch_size: the generator's BatchNorm needs at least 2 images per batch "
                        f"(got {params.train.batch_size})")  # fmt: skip
    if params.sample.count < 2:
        raise UserError(f"{source}: sample.count: evaluate needs at least 2 images for FID (got {params.sample.count})")
    if params.eval.kid.subset_size < 2:
        raise UserError(f"{source}: eval.kid.subset_size: KID needs at least 2 images per subset "
                        f"(got {params.eval.kid.subset_size})")  # fmt: skip


# How a stage writes each location: REPLACED folders are built aside and swapped in whole (whatever was in them is
# gone), FILEs are replaced by one rename, HOLDERs only hold other outputs and are never replaced themselves.
REPLACED, FILE, HOLDER = "replaced", "file", "holder"


def output_layout(params: Params) -> list[tuple[str, Path, str]]:
    """(name, absolute path, how it is written) of every location a stage writes or reads, for check_output_paths."""
    paths = params.paths
    replaced = ("raw", "clean", "fid_reference", "copy_index", "detector", "samples")
    where = [(f"paths.{k}", getattr(paths, k), REPLACED) for k in replaced]
    where += [("paths.submission", paths.submission, FILE)]
    where += [(f"paths.{k}", getattr(paths, k), HOLDER) for k in ("models", "metrics", "plots")]
    where += [(f"paths.{k}/{name}", f"{getattr(paths, k)}/{name}", FILE) for k, names in STAGE_FILES.items()
              for name in names]  # fmt: skip
    where += [("paths.plots/train", f"{paths.plots}/train", HOLDER), ("the project folder", ".", HOLDER)]
    where += [("eval.fid.cache_dir", params.eval.fid.cache_dir, HOLDER)]
    url = params.data.url
    if url.startswith("file://") or "://" not in url:
        where.append(("data.url", url.removeprefix("file://"), FILE))
    return [(name, Path(text).expanduser().resolve(), kind) for name, text, kind in where]


def check_output_paths(params: Params, source: str = "params") -> None:
    """UserError when one location would replace another: an output equal to another stage's output or input, or a
    folder swapped in whole (or a file) that contains one. Paths are compared resolved, from the working folder."""
    layout = output_layout(params)
    pairs = [(a, b) for a in layout for b in layout if a[0] != b[0]]
    for (a_name, a, a_kind), (b_name, b, b_kind) in pairs:
        if a == b and not (a_kind == HOLDER and b_kind == HOLDER):
            raise UserError(f"{source}: {a_name} and {b_name} are the same path ({a}): give each its own")
    for (a_name, a, a_kind), (b_name, b, _) in pairs:
        if a_name == "data.url" and a in b.parents:  # a folder as the source, holding what the stages write
            raise UserError(f"{source}: data.url ({a}) is a folder that holds {b_name} ({b}): the data source must "
                            "lie outside the pipeline's outputs")  # fmt: skip
        if a_kind != HOLDER and a in b.parents:
            what = "is replaced whole by its stage" if a_kind == REPLACED else "is written as one file"
            raise UserError(f"{source}: {a_name} ({a}) {what} but would hold {b_name} ({b}): "
                            "give it a folder of its own")  # fmt: skip


# Locations of output_layout that are not DVC's or the stages' to replace: train.sync may lie in them.
NOT_OUTPUTS = ("the project folder", "eval.fid.cache_dir", "data.url")


def check_sync_folder(params: Params, source: str = "params") -> None:
    """UserError when train.sync, a local folder, lies in the workspace's outputs: there DVC and the stages replace
    or remove what they do not know (`dvc repro` deletes a synced folder inside samples/ with the samples it
    replaces). Inside the project folder the whole top folder of an output counts (data/ holds data/raw, ...)."""
    folder = local_folder(params.train.sync)
    if folder is not None and (found := output_area_holding(folder, params)) is not None:
        area, name = found
        raise UserError(f"{source}: train.sync ({folder}) lies in {area}, where {name} is written and DVC "
                        "replaces what it does not know: give the synced checkpoints a folder outside the "
                        "workspace's outputs")  # fmt: skip


def check_resume_source(params: Params, source: str = "params") -> None:
    """UserError when train.resume_from, a local path, lies in the workspace's outputs (the same areas as
    train.sync's), or holds a place this workspace writes (an output, train.sync): it is only ever read, and a
    source that training writes into is no earlier run's."""
    folder = local_folder(params.train.resume_from)
    if folder is None:
        return
    if (found := output_area_holding(folder, params)) is not None:
        area, name = found
        raise UserError(f"{source}: train.resume_from ({folder}) lies in {area}, where {name} is written: resume "
                        "from an earlier run's folder outside the workspace's outputs")  # fmt: skip
    sync = local_folder(params.train.sync)
    written = [(name, path) for name, path, _ in output_layout(params) if name != "data.url"]
    for name, path in [*written, *([("train.sync", sync)] if sync is not None else [])]:
        if folder == path or folder in path.parents or (name == "train.sync" and path in folder.parents):
            raise UserError(f"{source}: train.resume_from ({folder}) holds {name} ({path}), which this workspace "
                            "writes: name the earlier run's own folder, outside what this one writes")  # fmt: skip


def local_folder(location: str) -> Path | None:
    """A train.sync or train.resume_from value as a resolved local path; None for "" or a remote store's URL."""
    if not location or ("://" in location and not location.startswith("file://")):
        return None
    return Path(location.removeprefix("file://")).expanduser().resolve()


def output_area_holding(folder: Path, params: Params) -> tuple[Path, str] | None:
    """(area, output's name) of the workspace output area that is or holds folder, else None. An output's area is
    the output itself, or its top folder when it lies in the project (data/ holds data/raw, ...): there DVC and the
    stages replace or remove what they do not know."""
    project = Path(".").resolve()
    areas = []  # (is a top folder, area, name): the output that is the area itself names it first
    for name, path, _ in output_layout(params):
        if name not in NOT_OUTPUTS:
            area = project / path.relative_to(project).parts[0] if project in path.parents else path
            areas.append((area != path, area, name))
    for _, area, name in sorted(areas, key=lambda a: a[0]):
        if folder == area or area in folder.parents:
            return area, name
    return None
