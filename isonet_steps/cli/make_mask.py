"""isonet make-mask: sample masks (dense and structured regions) for the tomograms in a STAR file."""

import click

from ._common import log_level_option, option, step, tomo_idx_option


@step("make-mask")
@click.argument("star", type=click.Path(dir_okay=False, path_type=str))
@option("--mask-folder", default="mask", help="Folder for the masks (<tomogram name>_mask.mrc, int8 0/1).")
@option("--density-percentage", type=float, default=None,
        help="Percent of voxels kept by the density criterion (100: off).  [default: the STAR's "
             "rlnMaskDensityPercentage, else 50]")
@option("--std-percentage", type=float, default=None,
        help="Percent of voxels kept by the local-std criterion (100: off).  [default: the STAR's "
             "rlnMaskStdPercentage, else 50]")
@option("--z-crop", type=float, default=None,
        help="Fraction of Z removed at the top and at the bottom, in [0, 0.5), e.g. 0.15.  [default: none]")
@option("--patch-size", type=int, default=4,
        help="Neighbourhood size in binned voxels: Gaussian σ = patch/2, windows of 2·patch+1.")
@option("--use-deconv-tomo/--no-use-deconv-tomo", default=True,
        help="Use rlnDeconvTomoName where that file exists, else rlnMicrographName.")
@tomo_idx_option()
@option("--output-star", default=None, help="STAR file to write.  [default: rewrite STAR in place]")
@log_level_option()
def command(star, mask_folder, density_percentage, std_percentage, z_crop, patch_size, use_deconv_tomo,
            tomo_idx, output_star, log_level):
    """Make a sample mask for each tomogram in STAR and record it in rlnMaskName.

    A voxel is kept when it is near dense (dark) material and has a high local standard
    deviation, both judged on a 2x-binned, smoothed copy. Also fills rlnMaskDensityPercentage
    and rlnMaskStdPercentage.

    rlnMaskBoundary may name an IMOD binary model (.mod, read directly: no IMOD install needed)
    drawn on the tomogram: its points are a polygon in XY; if the last two points lie 10 or more
    sections apart in Z they give the Z range instead. Only voxels inside both are kept.
    """
    from pathlib import Path

    from ..core.mask import check_mask_settings, make_mask, split_boundary
    from ..io.errors import InputError
    from ..io.imod import read_imod
    from ..io.log import get_logger
    from ..io.mrc import read_header, read_volume, write_volume
    from ..io.star import is_set, read_tomogram_star, resolve_path, select_rows, tomogram_source, write_star
    from ._paths import check_writable_target

    log = get_logger()
    table = read_tomogram_star(star)
    rows = select_rows(table, tomo_idx, star)
    out_star = Path(output_star) if output_star else Path(star)
    check_mask_settings(50.0 if density_percentage is None else density_percentage,
                        50.0 if std_percentage is None else std_percentage, patch_size, z_crop)
    check_writable_target(Path(mask_folder) / "x_mask.mrc")
    check_writable_target(out_star)

    def _setting(row, given, column, option):
        if given is not None:
            return float(given)
        value = table.at[row, column] if column in table.columns else None
        if not is_set(value):
            return 50.0
        if not 0.0 <= float(value) <= 100.0:
            raise InputError(f"{star}: {column} {float(value):g} (row {row + 1}) must be a percentage in 0..100; "
                             f"fix the STAR file or give {option}.")
        return float(value)

    def _source(row):
        return tomogram_source(table.iloc[row].to_dict(), star, use_deconv_tomo)[0]

    def _boundary(row, shape):
        """The boundary model's points (None when unset), checked against the tomogram's shape."""
        value = table.at[row, "rlnMaskBoundary"] if "rlnMaskBoundary" in table.columns else None
        if not is_set(value):
            return None
        try:
            path = resolve_path(value, star, "rlnMaskBoundary")
        except InputError:
            raise InputError(f"{star}: rlnMaskBoundary names {value}, which does not exist (row {row + 1}); "
                             f"fix rlnMaskBoundary or set it to None.") from None
        if path.suffix.lower() != ".mod":
            raise InputError(f"{star}: rlnMaskBoundary {value} (row {row + 1}) is not an IMOD model (.mod); "
                             f"fix rlnMaskBoundary or set it to None.")
        model = read_imod(path)
        first, last, polygon = split_boundary(model.points, shape[0], str(path))  # fails early, before any write
        drawn_on = model.image_size
        if all(n > 0 for n in drawn_on) and tuple(drawn_on) != shape[::-1]:
            log.warning("make-mask: %s was drawn on a %dx%dx%d (XxYxZ) volume but the tomogram is %dx%dx%d; "
                        "its coordinates are used as voxels of the tomogram", path, *drawn_on, *shape[::-1])
        if first > last:
            log.warning("make-mask: the Z range of %s lies outside the tomogram (%d sections); the mask will be empty",
                        path, shape[0])
        else:
            log.info("make-mask: boundary %s: %d polygon points, Z sections %d..%d", path, len(polygon), first, last)
        return model.points

    # Check every chosen row before writing anything.
    plans = []
    for row in rows:
        density = _setting(row, density_percentage, "rlnMaskDensityPercentage", "--density-percentage")
        std = _setting(row, std_percentage, "rlnMaskStdPercentage", "--std-percentage")
        source = _source(row)
        header = read_header(source, "tomogram")
        plans.append((row, source, density, std, _boundary(row, header.shape)))

    for column in ("rlnMaskDensityPercentage", "rlnMaskStdPercentage"):
        if column not in table.columns:
            table[column] = 50.0
    if "rlnMaskName" not in table.columns:
        table["rlnMaskName"] = "None"
    for row, source, density, std, boundary in plans:
        out = Path(mask_folder) / f"{source.stem}_mask.mrc"
        log.info("make-mask: %s | folder: %s | density: %g%% | std: %g%% | patch: %d | z-crop: %s",
                 source, mask_folder, density, std, patch_size, z_crop if z_crop else "none")
        volume = read_volume(source, "tomogram")
        voxel = volume.voxel_size if volume.voxel_size > 0 else float(table.at[row, "rlnPixelSize"])
        mask = make_mask(volume.data, density_percentage=density, std_percentage=std, patch_size=patch_size,
                         z_crop=z_crop, boundary=boundary)
        del volume
        kept = float(mask.mean())
        if kept == 0.0:
            log.warning("make-mask: the mask of %s is empty; raise the percentages, lower --z-crop "
                        "or check rlnMaskBoundary", source)
        write_volume(out, mask, voxel, dtype="int8")
        table.at[row, "rlnMaskDensityPercentage"] = density
        table.at[row, "rlnMaskStdPercentage"] = std
        table.at[row, "rlnMaskName"] = str(out)
        write_star(table, out_star)
        log.info("make-mask: wrote %s (%.1f%% of voxels kept)", out, 100.0 * kept)
