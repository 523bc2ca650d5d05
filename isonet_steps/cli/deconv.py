"""isonet deconv: CTF deconvolution (Wiener-like filter) of every tomogram in a tomograms.star."""

import click

from ._common import log_level_option, option, step, tomo_idx_option


def _all_cores() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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
    import time
    from pathlib import Path

    from ..core.ctf import CtfParams
    from ..core.deconv_chunked import chunk_layout, deconv_chunked
    from ..core.deconv_whole import deconv_volume
    from ..io.errors import InputError
    from ..io.log import get_logger
    from ..io.mrc import new_memmap, open_memmap, read_header, read_volume, release_pages, write_volume
    from ..io.star import is_set, read_tomogram_star, resolve_path, select_rows, write_star
    from ._paths import check_writable_target

    log = get_logger()
    table = read_tomogram_star(star)
    rows = select_rows(table, tomo_idx, star)
    out_star = Path(output_star) if output_star else Path(star)
    if ncpu is not None and ncpu < 1:
        raise InputError(f"--ncpu {ncpu} must be at least 1 (FFT threads).")
    workers = ncpu or _all_cores()
    if chunk_size is not None:
        chunk_layout((1, 1, 1), chunk_size, overlap_rate)  # range checks only
    CtfParams(pixel_size=1.0, defocus=1.0, voltage=voltage, cs=cs, snrfalloff=snrfalloff or 0.0,
              deconvstrength=deconvstrength or 0.0, highpassnyquist=highpassnyquist).check()
    check_writable_target(Path(deconv_folder) / "x.mrc")
    check_writable_target(out_star)

    def _star_value(row, column):
        value = table.at[row, column] if column in table.columns else None
        return float(value) if is_set(value) else 1.0

    def _check_row(params, row):
        try:
            params.check()
        except InputError as exc:
            raise InputError(f"{star}: row {row + 1}: {exc} Fix the STAR file or give the option.") from None

    # Check every chosen row before writing anything.
    plans = []
    for row in rows:
        name = table.at[row, "rlnMicrographName"]
        has_defocus = "rlnDefocus" in table.columns and is_set(table.at[row, "rlnDefocus"])
        defocus = float(table.at[row, "rlnDefocus"]) if has_defocus else 0.0
        if defocus < 0:
            raise InputError(f"{star}: rlnDefocus {defocus:g} of {name} is negative; give the underfocus in Å as a "
                             "positive number (0 = skip).")
        path = resolve_path(name, star, "rlnMicrographName")
        header = read_header(path, "tomogram")
        if defocus == 0:
            log.info("deconv: skipping %s: rlnDefocus is 0 (no CTF to correct, e.g. phase plate)", path)
            continue
        params = CtfParams(
            pixel_size=float(table.at[row, "rlnPixelSize"]),
            defocus=defocus,
            voltage=voltage,
            cs=cs,
            snrfalloff=snrfalloff if snrfalloff is not None else _star_value(row, "rlnSnrFalloff"),
            deconvstrength=deconvstrength if deconvstrength is not None else _star_value(row, "rlnDeconvStrength"),
            highpassnyquist=highpassnyquist,
        )
        _check_row(params, row)
        plans.append((row, path, header, params))

    for column, default in (("rlnSnrFalloff", 1.0), ("rlnDeconvStrength", 1.0), ("rlnDeconvTomoName", "None")):
        if column not in table.columns:
            table[column] = default
    for row, path, header, params in plans:
        out = Path(deconv_folder) / path.name
        voxel = header.voxel_size if header.voxel_size > 0 else params.pixel_size
        log.info("deconv: %s | pixel: %g Å | defocus: %g µm | snrfalloff: %g | deconvstrength: %g | %s",
                 path, params.pixel_size, params.defocus / 1e4, params.snrfalloff, params.deconvstrength,
                 f"chunks of {chunk_size}" if chunk_size else "whole tomogram")
        start = time.time()
        if chunk_size is None:
            volume = read_volume(path, "tomogram")
            write_volume(out, deconv_volume(volume.data, params, workers=workers, what=str(path)), voxel)
            del volume
        else:
            with open_memmap(path, "tomogram") as src, new_memmap(out, header.shape, voxel) as dst:

                def _release(src=src, dst=dst) -> None:
                    release_pages(src.data)
                    release_pages(dst)

                deconv_chunked(src.data, dst, params, chunk_size=chunk_size, overlap_rate=overlap_rate,
                               workers=workers, what=str(path), release=_release)
        table.at[row, "rlnSnrFalloff"] = params.snrfalloff
        table.at[row, "rlnDeconvStrength"] = params.deconvstrength
        table.at[row, "rlnDeconvTomoName"] = str(out)
        write_star(table, out_star)  # after each tomogram, as IsoNet: a crash keeps finished rows
        log.info("deconv: wrote %s in %.1f s", out, time.time() - start)
    if not plans:
        log.warning("deconv: nothing to do (no chosen row has a non-zero rlnDefocus); %s left unchanged", out_star)
