"""pipeline/'s rooms import only downward: core nothing else; data only core; runs core and metrics; no room stages.

Read from the source (every import statement anywhere in a module, and literal importlib calls), so a lazy import
inside a function counts as much as one at the top.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_stage_dependencies import imported_names

REPO = Path(__file__).resolve().parents[2]
ROOMS = ("core", "data", "train", "metrics", "runs")
# What each room may import besides itself (and third-party code).
ALLOWED = {
    "core": set(),
    "data": {"core"},
    "runs": {"core", "metrics"},  # compare and report read the metric registry's declarations
    "train": {"core", "data", "metrics"},
    "metrics": {"core", "data", "train"},
}


def room_of(module: str) -> str | None:
    """'pipeline.train.loop' -> 'train'; 'stages.cli' -> 'stages'; third-party -> None."""
    parts = module.split(".")
    if parts[0] == "stages":
        return "stages"
    if parts[0] == "pipeline" and len(parts) > 1:
        return parts[1] if parts[1] in ROOMS else "pipeline"
    return None


def test_every_module_lives_in_a_room() -> None:
    loose = [p.name for p in (REPO / "pipeline").glob("*.py") if p.name != "__init__.py"]
    assert not loose, f"pipeline/ holds modules outside the rooms {ROOMS}: {loose}"
    assert sorted(p.name for p in (REPO / "pipeline").iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(
        ROOMS
    )


@pytest.mark.parametrize("room", ROOMS)
def test_room_imports_only_what_it_may(room: str) -> None:
    bad = []
    for path in sorted((REPO / "pipeline" / room).rglob("*.py")):
        names, _ = imported_names(path)
        for name in sorted(names):
            target = room_of(name)
            if target and target != room and target not in ALLOWED[room]:
                bad.append(f"{path.relative_to(REPO)} imports {name}")
    assert not bad, f"pipeline/{room} may import only {sorted(ALLOWED[room]) or 'no other room'}:\n" + "\n".join(bad)
