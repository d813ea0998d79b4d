"""What a stage may load or read without dvc.yaml listing it, each with the reason: the one place for exceptions.

Usage:
    from pipeline.core.output_neutral import OUTPUT_NEUTRAL_PARAMS, NOT_STAGE_CODE
    OUTPUT_NEUTRAL_PARAMS["train.checkpoint_every"]   # -> why changing it cannot change any stage's outputs

dvc.yaml lists, for every stage, the rooms of pipeline/ (and the stage modules) it loads and each params key it reads,
so that a change to either reruns the stage (tests/deps/test_stage_dependencies.py checks this against what each stage
really loads and reads). The entries below are the exceptions: changing them cannot change what a stage writes, so
listing them would only rerun stages (fid_reference takes hours on CPU) for nothing. A key names one param or a whole
section ("paths" covers paths.raw, ...). Add an entry only with a reason that holds for every stage.
"""

from __future__ import annotations

OUTPUT_NEUTRAL_PARAMS: dict[str, str] = {
    "paths": "where inputs and outputs live; dvc.yaml interpolates these into each stage's deps and outs, "
    "so DVC tracks them there",
    "data.timeout_s": "how long to wait for a network read; the data is verified by its hash either way",
    "train.checkpoint_every": "how often a resumable checkpoint is written; resuming is bit-identical",
    "train.on_mismatch": "what to do with a checkpoint from other params (refuse or restart); "
    "never changes what a finished run trains",
    "train.max_minutes": "when this process stops training early; a stopped train stage exits non-zero, so DVC records "
    "nothing, and the run resumed from its checkpoint trains the same weights as one never stopped",
    "train.sync": "where checkpoints are also published and resumed from; a resumed run continues from the same "
    "verified checkpoint bytes, so it trains the same weights (a different machine's fingerprint is warned about)",
    "train.sync_stale_s": "when another machine's lease on a run counts as abandoned; decides who trains, not what",
    "train.resume_from": "an earlier run's checkpoints to continue from, only read; a resumed run continues from the "
    "verified checkpoint bytes, so it trains the same weights (a different machine's fingerprint is warned about)",
    "sample.batch_size": "image i depends only on (sample.seed, i), not on the batch it is drawn in",
    "eval.fid.batch_size": "Inception features are the same for any batch size",
    "eval.fid.cache_dir": "where downloaded weights (checked by hash) and the calibrated untrained network are kept",
}

NOT_STAGE_CODE: dict[str, str] = {
    "stages/cli.py": "the command line around every stage: parses arguments, loads params, turns UserError into "
    "exit code 2; it computes nothing a stage writes",
}
