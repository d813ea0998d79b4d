"""The anime-face detector behind AFD: its training data (data.py), its training (training.py), its model (model.py)."""
