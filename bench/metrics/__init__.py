"""Whether a metric measures what it claims: the AFD detectors on real, held-out and generated faces."""
