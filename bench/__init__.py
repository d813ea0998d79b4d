"""Benchmarks and reproductions, in rooms by kind (bench/README.md lists every script with its question and last
result). Run them from the repository root as modules, e.g. `.venv/bin/python -m bench.speed.clean --help`.
"""
