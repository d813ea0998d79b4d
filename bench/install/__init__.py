"""Reproductions of a new user's install: fresh clones, other Pythons and OSes, the notebook platforms' versions."""
