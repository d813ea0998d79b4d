"""dvc.yaml lists what each stage really runs: every project module it loads and every params key it reads.

Otherwise a change to an unlisted module or key reruns nothing, and `dvc repro` serves numbers the current code
would not produce. Everything is derived from dvc.yaml and the code; nothing here names a stage's modules or keys.

Modules: for each stage, the union of two sets, because each alone can miss one:
  - a static walk of the import graph from the stage's module (`animegan X` runs stages/X.py, see stages/cli.py),
    following every `import`/`from` statement anywhere in a module (also inside functions and branches the small run
    below never takes, such as the weight download) and every importlib.import_module / __import__ call with a literal
    name (registries, such as pipeline.metrics.afd reaching the anime detector). A call with a name computed at run time
    cannot be followed, so the test fails on one instead of guessing;
  - a trace of the stage's real command (`animegan X`, stages/cli.py included) run on small generated data in a
    fresh subprocess (tests/deps/trace_stage.py): every project module in sys.modules at exit, plus every project
    .py file opened (exec/runpy), whatever loaded it.
Modules declared not stage code (the CLI) in pipeline/core/output_neutral.py, and package __init__.py files that
hold nothing but a docstring, are left out. dvc.yaml lists a stage's code by room (`pipeline/core`, ...) and by file
(its stage module): every loaded module must lie in a listed room or be listed itself, and every listed room or file
must hold a module the stage loads, since a listed room the stage never loads reruns it for nothing.

Params: the trace records every key the stage read (attribute reads on the models load_params returns, whole
models when dumped or compared). Each must be listed in the stage's params in dvc.yaml, itself or a section above
it (`detector` covers detector.seed), or be declared output-neutral in pipeline/core/output_neutral.py.
"""

from __future__ import annotations

import ast
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.core.config import apply_override
from pipeline.core.output_neutral import NOT_STAGE_CODE, OUTPUT_NEUTRAL_PARAMS
from pipeline.data.cartoon import write_faces_zip

REPO = Path(__file__).resolve().parents[2]
TRACER = Path(__file__).with_name("trace_stage.py")
CODE_DIRS = ("pipeline", "stages")
STAGES: dict[str, dict] = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]

# The small data set-up: the only thing here that knows about particular stages, and only to make them quick.
FACES = {"count": 48, "size": 48, "seed": 5}
SMALL = [
    "data.image_size=16",
    "data.preview_count=4",
    "train.dcgan.g_features=8",
    "train.dcgan.d_features=8",
    "train.batch_size=8",
    "train.grid_size=4",
    "train.max_steps=2",
    "train.log_every=1",
    "train.snapshot_kimg=0.008",  # snapshots scored at both steps: the trace covers the scorer and what it reads
    "train.snapshot_count=4",
    "detector.epochs=1",
    "detector.batch_size=16",
    "detector.max_train_faces=0",
    "detector.holdout=0.25",
    "detector.calibration=0.25",
    "sample.count=8",
    "sample.batch_size=5",
    "eval.repeats=2",
    "eval.fid.weights=untrained",
    "eval.fid.batch_size=8",
    "eval.fid.reference_count=12",
    "eval.kid.subsets=2",
    "eval.kid.subset_size=4",
    "eval.kid.reference_pool=12",
    "eval.afd.real_count=4",
]


def stage_command(stage: str) -> list[str]:
    """The `animegan` arguments of a stage's cmd: ['train'] for `animegan train`."""
    words = shlex.split(STAGES[stage]["cmd"], comments=True)
    assert words[:1] == ["animegan"] and len(words) >= 2, f"{stage}: cmd {words} is not `animegan <command>`"
    return words[1:]


def stage_module(stage: str) -> Path:
    """stages/<command>.py, the module stages/cli.py runs for `animegan <command>`."""
    path = REPO / "stages" / f"{stage_command(stage)[0].replace('-', '_')}.py"
    assert path.is_file(), f"{stage}: no stage module {path.relative_to(REPO)} for its cmd"
    return path


def module_file(name: str) -> Path | None:
    """The project file of a dotted module name, or None when it is not the project's own code."""
    parts = name.split(".")
    if parts[0] not in CODE_DIRS:
        return None
    base = REPO.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_names(path: Path) -> tuple[set[str], list[str]]:
    """Module names a file imports anywhere in it (statements and literal importlib calls); and the lines of calls
    whose module name is computed, which no static walk can follow."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    names, computed = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}  # `from pipeline import afd`
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func):
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
            else:
                computed.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return names, computed


def _is_dynamic_import(func: ast.expr) -> bool:
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name in ("import_module", "__import__")


def static_closure(start: Path) -> tuple[set[str], list[str]]:
    """Project files reachable from `start` through imports, parent packages included; and computed imports met."""
    seen: set[Path] = set()
    computed: list[str] = []
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen or path.relative_to(REPO).as_posix() in NOT_STAGE_CODE:
            continue
        seen.add(path)
        names, dynamic = imported_names(path)
        computed += dynamic
        for name in names:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py too
                found = module_file(".".join(parts[:i]))
                if found:
                    todo.append(found)
    return {p.relative_to(REPO).as_posix() for p in seen}, computed


def is_stage_code(rel: str) -> bool:
    if rel in NOT_STAGE_CODE:
        return False
    path = REPO / rel
    if path.name != "__init__.py":
        return True
    body = ast.parse(path.read_text(encoding="utf-8")).body
    has_docstring = bool(body) and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    return len(body) > int(has_docstring)  # a package file that runs nothing is not code a stage depends on


def covered(item: str, listed: list[str]) -> bool:
    """True when `item` (a file or a dotted key) is listed itself or under a listed folder or section."""
    sep = "/" if "/" in item else "."
    return any(item == entry or item.startswith(entry.rstrip(sep) + sep) for entry in listed)


def listed_params(stage: str) -> list[str]:
    keys = []
    for entry in STAGES[stage].get("params", []):
        keys += [entry] if isinstance(entry, str) else [k for v in entry.values() for k in v]  # {file: [keys]}
    return keys


def listed_code(stage: str) -> list[str]:
    return [str(d).rstrip("/") for d in STAGES[stage].get("deps", []) if "${" not in str(d)]


def run_order() -> list[str]:
    """Stages in an order where each one's inputs were written by an earlier one (by dvc.yaml's deps and outs)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))

    def resolve(entry) -> str:
        text = str(next(iter(entry)) if isinstance(entry, dict) else entry)
        while "${" in text:
            start = text.index("${")
            end = text.index("}", start)
            value = params
            for part in text[start + 2 : end].split("."):
                value = value[part]
            text = text[:start] + str(value) + text[end + 1 :]
        return text.rstrip("/")

    outs = {s: [resolve(o) for key in ("outs", "metrics", "plots") for o in STAGES[s].get(key, [])] for s in STAGES}
    needs = {
        s: {o for o in outs if o != s for d in STAGES[s].get("deps", []) if covered(resolve(d), outs[o])}
        for s in STAGES
    }
    order: list[str] = []
    while len(order) < len(STAGES):
        ready = [s for s in STAGES if s not in order and needs[s] <= set(order)]
        assert ready, f"dvc.yaml's stages depend on each other in a cycle: {needs}"
        order.append(ready[0])
    return order


@pytest.fixture(scope="module")
def traces(module_tmp) -> dict[str, dict]:
    """Every stage of dvc.yaml run through its real command, in pipeline order, in one small project."""
    project = module_tmp("deps")
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    zip_path = write_faces_zip(project / "faces.zip", **FACES)
    for item in [f"data.url={zip_path.as_uri()}", "data.sha256=", f"eval.fid.cache_dir={project / 'cache'}", *SMALL]:
        apply_override(raw, item)
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    env = os.environ | {
        "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "ANIMEGAN_PROGRESS": "0", "CUDA_VISIBLE_DEVICES": "",
    }  # fmt: skip
    found = {}
    for stage in run_order():
        out = project / f"trace-{stage}.json"
        done = subprocess.run(
            [sys.executable, str(TRACER), str(out), *stage_command(stage)],
            cwd=project, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        log = done.stdout[-3000:] + done.stderr[-3000:]
        assert done.returncode == 0, f"stage {stage} failed on the small data:\n{log}"
        found[stage] = json.loads(out.read_text(encoding="utf-8"))
    return found


def test_static_walk_follows_imports_inside_functions_and_registries() -> None:
    """The walk reaches the anime detector (through pipeline.metrics.afd's registry) and the stage's lazy imports."""
    files, computed = static_closure(REPO / "stages" / "evaluate.py")
    assert "pipeline/metrics/detector/model.py" in files  # importlib.import_module("pipeline.metrics.detector.model")
    assert {"stages/evaluate.py", "pipeline/metrics/afd.py", "pipeline/metrics/inception.py"} <= files
    assert "pipeline/data/fetch.py" in files
    assert "stages/cli.py" not in files and not computed


def test_every_stage_runs_a_stage_module() -> None:
    assert STAGES, "dvc.yaml has no stages"
    for stage in STAGES:
        stage_module(stage)


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(STAGES))
def test_dvc_yaml_lists_every_module_a_stage_loads(stage: str, traces: dict[str, dict]) -> None:
    static, computed = static_closure(stage_module(stage))
    assert not computed, (
        f"stage {stage}: import with a computed module name at {', '.join(computed)}: the dependency test cannot "
        "follow it; import a literal name (e.g. a registry table of importlib.import_module('pipeline.x') calls)"
    )
    loaded = {f for f in static | set(traces[stage]["files"]) if is_stage_code(f)}
    missing = sorted(f for f in loaded if not covered(f, listed_code(stage)))
    assert not missing, f"dvc.yaml: stage {stage} loads {', '.join(missing)} but does not list it in its deps"
    needless = [entry for entry in listed_code(stage) if not any(covered(f, [entry]) for f in loaded)]
    assert not needless, f"dvc.yaml: stage {stage} lists {', '.join(needless)} but loads nothing there: needless reruns"


def test_stage_code_is_listed_by_room() -> None:
    """Every code dep is a stage module or a room of pipeline/, so a module added inside a room is covered at once."""
    rooms = {p.relative_to(REPO).as_posix() for p in (REPO / "pipeline").rglob("__init__.py")}
    rooms = {r.rsplit("/", 1)[0] for r in rooms} - {"pipeline"}
    for stage in STAGES:
        for entry in listed_code(stage):
            if entry.startswith("pipeline"):
                assert entry in rooms, f"dvc.yaml: stage {stage} lists {entry}: list its room instead ({sorted(rooms)})"
            else:
                assert entry.startswith("stages/") and entry.endswith(".py"), f"dvc.yaml: stage {stage}: {entry}"


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(STAGES))
def test_dvc_yaml_lists_every_params_key_a_stage_reads(stage: str, traces: dict[str, dict]) -> None:
    read = traces[stage]["params_read"]
    assert read, f"stage {stage}: the trace recorded no params read at all; the recorder is broken"
    listed = listed_params(stage)
    missing = sorted(k for k in read if not covered(k, listed) and not covered(k, list(OUTPUT_NEUTRAL_PARAMS)))
    assert not missing, (
        f"dvc.yaml: stage {stage} reads params {', '.join(missing)} but does not list them (or declare them "
        "output-neutral in pipeline/core/output_neutral.py)"
    )
