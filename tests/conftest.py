"""Shared test settings: no progress bars, no network, CPU only; how pytest-xdist shares the tests out.

`make test` runs the suite on two pytest-xdist workers (`-n 2 --dist loadgroup`). Each test module is one group, so
its module-scoped fixtures (a trained workspace, a served zip) are built once, on one worker. Modules that work in
one shared folder name it in `XDIST_GROUP` (the demo workspace: tests/demo_workspace.py) and run on one worker, one
after the other. Shared groups go out first, then the other slow modules, so the quick ones fill the gaps at the end.
"""

import os

import pytest

os.environ.setdefault("ANIMEGAN_PROGRESS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the xdist_group marks into the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def group(item: pytest.Item) -> str:
        return getattr(item.module, "XDIST_GROUP", item.nodeid.split("::")[0])

    def slow(item: pytest.Item) -> bool:
        return item.get_closest_marker("slow") is not None

    slow_groups = {group(item) for item in items if slow(item)}
    shared = {group(item) for item in items if hasattr(item.module, "XDIST_GROUP")}  # several modules: the longest
    items.sort(key=lambda item: (group(item) not in shared, group(item) not in slow_groups))  # stable within each
    for item in items:
        item.add_marker(pytest.mark.xdist_group(group(item)))
