"""isonet make-phantom: a synthetic tomogram with its ground truth, for trying the pipeline."""

import click

from ._common import log_level_option, option, param_options, step


def _parse_shape(ctx, param, value):
    """'Z,Y,X' -> (Z, Y, X); one-line error otherwise."""
    try:
        shape = tuple(int(v) for v in str(value).replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3:
        raise click.BadParameter(f"{value!r} is not three whole numbers Z,Y,X; write e.g. 64,160,160.")
    return shape


@step("make-phantom")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=str))
@option("--shape", default="64,160,160", callback=_parse_shape, metavar="Z,Y,X", help="Volume size in voxels.")
@param_options("make_phantom")
@option("--tilt-step", type=float, default=3.0, help="Tilt increment, degrees.")
@option("--snr", type=float, default=0.5, help="Signal variance / noise variance of each projection.")
@option("--halves/--no-halves", default=False,
        help="Also write tomo_half1.mrc and tomo_half2.mrc: independent half-dose (even/odd) reconstructions.")
@log_level_option()
def command(outdir, shape, tilt_min, tilt_max, tilt_step, snr, seed, halves, pixel_size, log_level):
    """Write OUTDIR/tomo.mrc (simulated tilt-series reconstruction, zero mean, unit std),
    OUTDIR/ground_truth.mrc (noise-free density, protein dark) and OUTDIR/labels.mrc
    (0 ice, 1 membrane, 2 vesicle, 3 filament, 4 particle, 5 gold bead).
    """
    from ..steps.make_phantom import run_make_phantom

    run_make_phantom(outdir, shape=shape, tilt_min=tilt_min, tilt_max=tilt_max, tilt_step=tilt_step, snr=snr,
                     seed=seed, halves=halves, pixel_size=pixel_size)
