"""The animegan library, in five rooms that mirror the DVC graph (stages/ holds one thin module per stage on top).

    core/      what every stage uses: params, errors, atomic writes, hashing, progress, seeding, speed, ...
    data/      download and clean: fetch, archive, clean, cartoon faces, face batches, flips
    train/     the training loop, checkpoints, EMA, losses, schedules, log, sampling, generator.pt;
               families/ holds one module per model family (networks + adapter)
    metrics/   Inception, FID, KID, PRDC, copies, AFD, the FID reference, evaluation; detector/ (anime detector)
    runs/      what looks at finished runs: compare, revisions, report, SVG charts, the DVC remote

Imports point down the list only where allowed: core imports no other room; data and runs import only core;
train and metrics import core, data and each other, never stages/ (tests/deps/test_layout.py checks this).
"""
