"""Scoring samples: Inception features, FID, KID, PRDC, copies of training faces, AFD, the FID reference and the
evaluation that combines them; detector/ is the anime-face detector (its data, training and model). Never imports
stages/."""
