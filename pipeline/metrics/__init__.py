"""Scoring samples: the metric registry (registry.py) and its metrics (scores/, one module each), scoring draws with
loaded resources (scoring.py, resources.py), what evaluate loads (evaluation.py); the math beneath them (Inception
features, FID, KID, PRDC, copies of training faces, AFD, the FID reference); detector/ is the anime-face detector
(its data, training and model). Never imports stages/."""
