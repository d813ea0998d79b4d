"""What the notebook platforms have before the project is installed (Colab's runtime as of 2026; Kaggle's image).

Usage:
    from bench.install.platforms import PLATFORMS
    PLATFORMS["colab"]["torch"]          # "2.11.0"

bench.install.colab_case installs these versions into a fresh venv before `pip install -e .`; tests/test_packaging.py
checks that every range in pyproject.toml admits them (issue 16: `pip install -e .` there must keep the platform's
torch, numpy, scipy and Pillow).
"""

from __future__ import annotations

PLATFORMS = {
    "colab": {
        "python": "3.13.15",
        "torch": "2.11.0",
        "torchvision": "0.26.0",
        "numpy": "2.1.3",
        "scipy": "1.16.3",
        "pillow": "11.3.0",
        "pydantic": "2.13.4",
    },
    "kaggle": {"python": "3.12.12", "torch": "2.10.0", "torchvision": "0.25.0"},
}
