"""isonet-nf: IsoNet missing-wedge correction and denoising of cryo-ET tomograms.

The package is layered; each subpackage imports only those above it in this list:

- ``io``: files (MRC, STAR, IsoNet's tomogram tables, IMOD models, refine's folder, atomic writes).
- ``core``: the science on numpy arrays (wedge, rotations, noise, masks, boxes, CTF, FSC, metrics,
  phantoms).
- ``network``: the Keras 3 U-Net, devices and precision, training pairs, refine, tiled inference.
- ``steps``: one library function per step (STAR in, files out).
- ``workflow``: the parameter table and ``isonet run``'s resumable pipeline.
- ``report``: the HTML report, its figures (matplotlib) and ``isonet check``.
- ``cli``: thin Click commands that parse, call one library function and exit.
"""

__version__ = "0.1.0"

from .network import cpu as _cpu

_cpu.prefer_onednn()  # before anything imports TensorFlow: oneDNN's kernels on AVX2-only CPUs too

