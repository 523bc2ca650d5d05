"""isonet deconv: CTF deconvolution (Wiener-like filter) of every tomogram in a tomograms.star."""

import click

from ._common import log_level_option, option, param_options, step


@step("deconv")
@click.argument("star", type=click.Path(dir_okay=False, path_type=str))
@option("--deconv-folder", default="deconv",
        help="Folder for the deconvolved tomograms (same file names as the inputs).")
@param_options("deconv")
@option("--ncpu", type=int, default=None, help="FFT threads.  [default: all cores]")
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
