"""isonet-nf: IsoNet missing-wedge correction and denoising of cryo-ET tomograms.

The science lives here as plain functions on numpy arrays, one module per concept:

- ``mrc``, ``star``, ``imod``, ``checkpoint``, ``atomic``: the modules that touch files (MRC volumes,
  STAR tables, IMOD mask-boundary models, refine's result folder, atomic writes).
- ``tomostar``: IsoNet's STAR tables from folders; ``ctf``: the CTF deconvolution filter, applied by
  ``deconv_whole`` (one FFT) and ``deconv_chunked`` (bounded memory); ``mask``: sample
  masks; ``extract``: subtomogram picking and the gold-standard halves; ``resample``: rescaling;
  ``phantom``: synthetic tomograms with ground truth; ``metrics``: quality against it.
- ``wedge``, ``rotations``, ``normalize``, ``noise``, ``pairs``, ``unet``, ``devices``, ``refine``,
  ``predict``: the self-supervised missing-wedge correction; ``cpu``: vector units and kernels.
- ``fsc``, ``gold_standard``: directional gold-standard resolution from two half networks.
- ``params``, ``pipeline``, ``report``: ``isonet run``/``demo`` and the HTML report; ``plots``: figures
  (matplotlib, imported only when a figure is drawn).

The command-line layer (``isonet_steps.cli``) is thin: it parses, reads, calls one function here,
and writes.
"""

__version__ = "0.1.0"

from . import cpu as _cpu

_cpu.prefer_onednn()  # before anything imports TensorFlow: oneDNN's kernels on AVX2-only CPUs too

