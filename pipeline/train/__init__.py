"""Training: the loop, checkpoints, EMA, losses, schedules, the training log, sampling from a generator, the
generator.pt file; families/ holds one module per model family. Never imports stages/."""
