"""How fast: a stage or a library path against what ran before or what a user would otherwise run."""
