"""isonet deconv: CTF deconvolution (Wiener-like filter) of every tomogram in a tomograms.star."""

import click

from ._common import log_level_option, option, step, tomo_idx_option


@step("deconv")
@click.argument("star", type=click.Path(dir_okay=False, path_type=str))
@option("--deconv-folder", default="deconv",
        help="Folder for the deconvolved tomograms (same file names as the inputs).")
@option("--voltage", type=float, default=300.0, help="Acceleration voltage in kV.")
@option("--cs", type=float, default=2.7, help="Spherical aberration in mm.")
@option("--snrfalloff", type=float, default=None,
        help="How fast the modelled SNR falls with frequency.  [default: the STAR's rlnSnrFalloff, else 1.0]")
@option("--deconvstrength", type=float, default=None,
        help="Strength (log10 of the modelled SNR).  [default: the STAR's rlnDeconvStrength, else 1.0]")
@option("--highpassnyquist", type=float, default=0.02, help="High-pass width as a fraction of Nyquist.")
@option("--chunk-size", type=int, default=None,
        help="Deconvolve in cubic chunks of this many voxels per edge to bound memory (e.g. 256).  [default: whole "
             "tomogram at once]")
@option("--overlap-rate", type=float, default=0.25, help="Chunk overlap as a fraction of --chunk-size.")
@option("--ncpu", type=int, default=None, help="FFT threads.  [default: all cores]")
@tomo_idx_option()
@option("--output-star", default=None, help="STAR file to write.  [default: rewrite STAR in place]")
@log_level_option()
def command(star, deconv_folder, voltage, cs, snrfalloff, deconvstrength, highpassnyquist, chunk_size,
            overlap_rate, ncpu, tomo_idx, output_star, log_level):
    """Deconvolve the CTF of the tomograms in STAR (rows with rlnDefocus 0 are skipped).

    Writes <deconv folder>/<tomogram file name> with the input's voxel size and fills the STAR
    columns rlnSnrFalloff, rlnDeconvStrength and rlnDeconvTomoName. With --chunk-size the tomogram
    is streamed from disk, so memory stays bounded; the result equals whole-tomogram mode.
    """
    from ..steps.deconv import run_deconv

    run_deconv(star, deconv_folder=deconv_folder, voltage=voltage, cs=cs, snrfalloff=snrfalloff,
               deconvstrength=deconvstrength, highpassnyquist=highpassnyquist, chunk_size=chunk_size,
               overlap_rate=overlap_rate, ncpu=ncpu, tomo_idx=tomo_idx, output_star=output_star)
