"""Shared test settings: no progress bars, no network, CPU only."""

import os

os.environ.setdefault("ANIMEGAN_PROGRESS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
