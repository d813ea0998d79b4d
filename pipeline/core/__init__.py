"""What every stage uses: params and config, errors, atomic writes, hashing, progress, seeding, speed and device
choice, distributed set-up, npy streaming, image grids, the output-neutral params list. Imports no other room."""
