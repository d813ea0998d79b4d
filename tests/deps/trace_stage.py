"""Run one `animegan` command in this process; record the project files it loaded and the params keys it read.

Usage (tests/deps/test_stage_dependencies.py runs it in a fresh subprocess per stage, so nothing is loaded before):
    PYTHONPATH=<repo> python tests/deps/trace_stage.py trace.json train      # = `animegan train`, cwd = the project

Writes trace.json: {"exit_code": int, "files": ["pipeline/x.py", ...], "params_read": ["train.lr_g", ...]}.
- files: every module in sys.modules at exit whose file lies under the repo's pipeline/ or stages/ (however it was
  imported: a plain import, importlib, a registry), plus any such .py file opened while the command ran (code run
  with exec or runpy never shows up in sys.modules). A pipeline.* or stages.* module loaded from elsewhere (another
  checkout) is an error: the trace would describe other code.
- params_read: the dotted key of every params value the command read, found by recording attribute reads on the
  pydantic models that load_params returns (and every key below a model when it is dumped, iterated or compared),
  their extra keys included (train.dcgan.g_features: a model family's section is an extra key of train).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CODE_DIRS = ("pipeline", "stages")

_opened: set[str] = set()


def _audit(event: str, args: tuple) -> None:
    if event == "open" and args and isinstance(args[0], str | os.PathLike):
        path = os.fspath(args[0])
        if isinstance(path, str) and path.endswith(".py"):
            _opened.add(path)


def project_file(path: str) -> str | None:
    """'pipeline/x.py' for a file of the project's own code, else None."""
    try:
        rel = Path(path).resolve().relative_to(REPO)
    except ValueError:
        return None
    return rel.as_posix() if rel.parts[0] in CODE_DIRS and rel.suffix == ".py" else None


class ParamsRecorder:
    """Records reads of the values of the params objects handed out by load_params."""

    def __init__(self, section_type: type) -> None:
        self.section_type = section_type
        self.owner: dict[int, str] = {}  # id(model) -> its dotted prefix ("", "eval.", "eval.kid.")
        self.alive: list[object] = []  # keeps indexed models alive, so their ids are never reused
        self.read: set[str] = set()

    @staticmethod
    def values(model: object) -> dict[str, object]:
        """The model's keys and values: its fields, and the extra keys a section allows (train.dcgan, ...)."""
        return {**{name: model.__dict__[name] for name in type(model).model_fields}, **(model.model_extra or {})}

    def index(self, model: object, prefix: str = "") -> None:
        self.owner[id(model)] = prefix
        self.alive.append(model)
        for name, value in self.values(model).items():
            if isinstance(value, self.section_type):
                self.index(value, f"{prefix}{name}.")

    def leaves(self, model: object, prefix: str) -> set[str]:
        keys = set()
        for name, value in self.values(model).items():
            keys |= self.leaves(value, f"{prefix}{name}.") if isinstance(value, self.section_type) else {prefix + name}
        return keys

    def install(self) -> None:
        recorder, section = self, self.section_type

        def getattribute(model, name):
            value = object.__getattribute__(model, name)
            prefix = recorder.owner.get(id(model))
            if prefix is not None and name in type(model).model_fields and not isinstance(value, section):
                recorder.read.add(prefix + name)
            return value

        section.__getattribute__ = getattribute
        extra = section.__getattr__  # extra keys (a family's section and its keys) are read through __getattr__

        def getattr_extra(model, name):
            value = extra(model, name)
            prefix = recorder.owner.get(id(model))
            if prefix is not None and name in (model.model_extra or {}) and not isinstance(value, section):
                recorder.read.add(prefix + name)
            return value

        section.__getattr__ = getattr_extra
        for method in ("model_dump", "model_dump_json", "model_copy", "__iter__", "__eq__", "__copy__", "__deepcopy__"):
            original = getattr(section, method)

            def whole(model, *args, _original=original, **kwargs):
                for m in (model, *args):
                    prefix = recorder.owner.get(id(m))
                    if prefix is not None:
                        recorder.read |= recorder.leaves(m, prefix)
                return _original(model, *args, **kwargs)

            setattr(section, method, whole)


def main(argv: list[str]) -> int:
    out, command = Path(argv[0]), argv[1:]
    sys.addaudithook(_audit)
    import pipeline.core.config as config

    recorder = ParamsRecorder(config.Section)
    recorder.install()
    load_params = config.load_params

    def recorded_load_params(*args, **kwargs):
        params = load_params(*args, **kwargs)
        recorder.index(params)
        return params

    config.load_params = recorded_load_params  # before stages.cli imports it
    from stages import cli

    try:
        cli.app(args=command, prog_name="animegan")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)

    files, foreign = set(), []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not path:
            continue
        rel = project_file(path)
        if rel:
            files.add(rel)
        elif name.split(".")[0] in CODE_DIRS:
            foreign.append(f"{name} from {path}")
    files |= {rel for path in _opened if (rel := project_file(path))}
    if foreign:
        print(f"trace_stage: project modules loaded from outside {REPO}: {foreign}; set PYTHONPATH", file=sys.stderr)
        code = code or 3
    trace = {"exit_code": code, "files": sorted(files), "params_read": sorted(recorder.read)}
    out.write_text(json.dumps(trace, indent=2) + "\n", encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
