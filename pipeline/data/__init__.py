"""The faces: fetch and unpack the course zip, clean it into faces.npy, generated cartoon faces, training batches,
flips. Imports only pipeline.core."""
