"""tests/train: torch on one thread while these tests run (see train_helpers), and a small face array."""

import numpy as np
import pytest
import torch
from train_helpers import tiny_faces


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def faces() -> np.ndarray:
    return tiny_faces()
