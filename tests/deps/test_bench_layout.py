"""bench/ in rooms: every script in bench/README.md's index, no sys.path changes, nothing from tests/, no script
importing another script, and every module importing as `bench.<room>.<name>`.

A script is a module with `if __name__ == "__main__"`; the modules without one are what scripts share. bench/course/
(the course's own loop and face set) may be both: other benches build on it and each also runs alone.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
from test_stage_dependencies import imported_names

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
SHARED_ROOM = "bench.course"  # imported by other benches, and a script of its own


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(BENCH.rglob("*.py"))}


def is_script(path: Path) -> bool:
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            names = {n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)}
            texts = {n.value for n in ast.walk(node.test) if isinstance(n, ast.Constant)}
            if "__name__" in names and "__main__" in texts:
                return True
    return False


SCRIPTS = {name for name, path in MODULES.items() if is_script(path)}


def test_bench_has_rooms_and_every_script_lives_in_one() -> None:
    loose = [name for name in SCRIPTS if name.count(".") != 2]
    assert not loose, f"bench scripts outside a room (bench/<room>/<script>.py): {loose}"
    assert len(SCRIPTS) >= 20, sorted(SCRIPTS)  # the index below must not pass on an empty walk


def test_every_script_is_in_the_index_and_the_index_names_only_scripts() -> None:
    readme = (BENCH / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"python -m (bench\.[a-z_]+\.[a-z0-9_]+)", readme))
    assert SCRIPTS - listed == set(), f"scripts missing from bench/README.md: {sorted(SCRIPTS - listed)}"
    assert listed - SCRIPTS == set(), f"bench/README.md lists what is no script: {sorted(listed - SCRIPTS)}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_path_hacks_no_tests_no_script_imports_another(name: str) -> None:
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hacks = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "path"
             and isinstance(n.value, ast.Name) and n.value.id == "sys"]  # fmt: skip
    assert not hacks, f"{path.relative_to(REPO)} touches sys.path (lines {hacks}): run it as python -m {name}"
    names, _ = imported_names(path)
    test_modules = {p.stem for p in (REPO / "tests").rglob("*.py")} | {"tests"}
    from_tests = sorted(n for n in names if n.split(".")[0] in test_modules)
    assert not from_tests, f"{name} imports from tests/: {from_tests} (move what it needs into bench or pipeline)"
    others = sorted(n for n in names & SCRIPTS if n != name and not n.startswith(SHARED_ROOM))
    assert not others, f"{name} imports the script(s) {others}: move what they share into a module without __main__"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_bench_module_imports(name: str) -> None:
    importlib.import_module(name)
