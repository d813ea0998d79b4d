"""What rerunning an experiment in a workspace will do, said in one line before it runs.

Usage:
    from pipeline.runs.continuation import continuation_line
    from pipeline.train.checkpoint import load_checkpoint
    continuation_line("baseline", load_checkpoint(Path("models/checkpoint.pt")), to_dict(params), up_to_date=False)
    # "baseline: finished earlier, showing its results"   (dvc status: every stage up to date)
    # "baseline: resuming from step 120 of 450"            (a run cut off)
    # "baseline: no checkpoint here; training continues from the newest verified one in train.resume_from (...)"
    # "baseline: extending from 1 to 3 epochs (step 140 of 420)"
    # "baseline: trained earlier (140 steps); running the stages after training"
    # "baseline: settings changed since its checkpoint (train.loss: 'gan' -> 'wgan'): training again from the start"
    budget_line("baseline", stopped_summary)   # after it ran: train stopped at train.max_minutes
    # "baseline: stopped at the time budget after step 40 of 100 (2,560 images seen, 0.5 h of training in all): ..."

The training loop decides for itself (pipeline.train.loop); this reads the same facts ahead of it: the checkpoint's
step, whether it holds a finished run's summary, and its signature against the params about to be used. The steps
asked follow the loop's plan: epochs x ((faces // batch_size) // n_critic), capped by max_steps.
"""

from __future__ import annotations

from typing import Any

SHOWN = 3  # changed settings named in the line


def _lookup(tree: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def changed_settings(signature: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """The train.* / data.* entries of a checkpoint's signature that the params now set otherwise."""
    out = []
    for key, saved in signature.items():
        if not key.startswith(("train.", "data.")):
            continue  # faces.*: the data's digest, known only once clean has run
        found, now = _lookup(params, key)
        if found and _plain(now) != _plain(saved):
            out.append(f"{key}: {saved!r} -> {now!r}")
    return out


def steps_asked(train: dict[str, Any], faces: int) -> tuple[int, int]:
    """(steps per epoch, total steps) the loop plans for these train params on `faces` faces."""
    per_epoch = (faces // int(train["batch_size"])) // int(train.get("n_critic", 1))
    total = int(train["epochs"]) * per_epoch
    if train.get("max_steps"):
        total = min(total, int(train["max_steps"]))
    return per_epoch, total


def continuation_line(name: str, state: dict[str, Any] | None, params: dict[str, Any], up_to_date: bool) -> str:
    """One line: what a rerun of experiment `name` does with this checkpoint state (None: none here)."""
    train = params["train"]
    if up_to_date:
        return f"{name}: finished earlier, showing its results"
    if state is None:
        if train.get("resume_from"):
            also = " or train.sync" if train.get("sync") else ""
            return f"{name}: no checkpoint here; training continues from the newest verified one in " \
                   f"train.resume_from ({train['resume_from']}){also}"  # fmt: skip
        if train.get("sync"):
            return f"{name}: no checkpoint here; training resumes from train.sync if it holds one, else starts"
        return f"{name}: starting a new run ({train['epochs']} epochs)"
    if changed := changed_settings(state.get("signature") or {}, params):
        more = f", {len(changed) - SHOWN} more" if len(changed) > SHOWN else ""
        return f"{name}: settings changed since its checkpoint ({'; '.join(changed[:SHOWN])}{more}): training again " \
               "from the start"  # fmt: skip
    step = int(state["step"])
    per_epoch, total = steps_asked(train, int((state.get("signature") or {}).get("faces.count", 0)))
    if per_epoch == 0 or step > total:
        return f"{name}: its checkpoint is at step {step}, past the {total} asked: training again from the start"
    if step == total:
        return f"{name}: trained earlier ({step} steps); running the stages after training"
    if state.get("summary") is not None:
        return f"{name}: extending from {step / per_epoch:g} to {train['epochs']} epochs (step {step} of {total})"
    return f"{name}: resuming from step {step} of {total}"


def budget_line(name: str, summary: dict[str, Any]) -> str:
    """One line after `dvc repro` stopped at the train stage's time budget (its metrics/train.json summary)."""
    hours = float(summary["wall_s"]) / 3600
    return (
        f"{name}: stopped at the time budget after step {summary['steps']} of {summary['total_steps']} "
        f"({summary['images_seen']:,} images seen, {hours:.1f} h of training in all): Run all again to continue "
        f"(or `animegan exp` again here)"
    )
