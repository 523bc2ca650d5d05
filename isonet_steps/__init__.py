"""isonet-nf: IsoNet missing-wedge correction and denoising of cryo-ET tomograms.

The science lives here as plain functions on numpy arrays, one module per concept:

- ``mrc``, ``star``: the only modules that touch files (MRC volumes, STAR tables).
- ``ctf``: CTF deconvolution; ``mask``: sample masks; ``extract``: subtomogram picking;
  ``resample``: rescaling; ``phantom``: synthetic tomograms with ground truth.
- ``wedge``, ``rotations``, ``normalize``, ``noise``, ``pairs``, ``unet``, ``refine``,
  ``predict``: the self-supervised missing-wedge correction.
- ``fsc``: gold-standard directional resolution.

The command-line layer (``isonet_steps.cli``) is thin: it parses, reads, calls one function here,
and writes.
"""

__version__ = "0.1.0"
