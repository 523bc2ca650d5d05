"""The science on numpy arrays: wedge, rotations, noise, masks, boxes, CTF, FSC, metrics, phantoms.

No files and no network here (only ``io.errors`` for one-line errors and ``io.log`` for progress),
so every function is tested on arrays in memory.
"""
