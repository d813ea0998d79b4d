"""The model families: size, FLOPs and images/s of each, and how far each gets on real faces."""
