"""prepare-star: the tomograms.star every later step reads, from a folder or from a given STAR."""

from __future__ import annotations

import os
from pathlib import Path

from ..io.log import get_logger
from ..io.star import is_set, read_tomogram_star, resolve_path, write_star
from ..io.tomostar import list_tomograms, tomogram_table

#: Columns that name files: a STAR copied elsewhere keeps them valid by making them absolute.
PATH_COLUMNS = ("rlnMicrographName", "rlnDeconvTomoName", "rlnMaskName",
                "rlnTomoReconstructedTomogramHalf1", "rlnTomoReconstructedTomogramHalf2")


def run_prepare_star(folder: str | os.PathLike, output_star: str | os.PathLike = "tomograms.star", *,
                     pixel_size: float = 10.0, defocus: float = 0.0, number_subtomos: int = 100,
                     tilt_min: float = -60.0, tilt_max: float = 60.0, named_in: str | None = None) -> Path:
    """Write a tomograms.star listing every .mrc/.rec tomogram in ``folder``; returns its path."""
    table = tomogram_table(list_tomograms(folder), pixel_size=pixel_size, defocus=defocus,
                           number_subtomos=number_subtomos, tilt_min=tilt_min, tilt_max=tilt_max, named_in=named_in)
    write_star(table, output_star)
    get_logger().info("wrote %s with %d tomograms", output_star, len(table))
    return Path(output_star)


def absolute_paths(table, star: str | os.PathLike, columns=PATH_COLUMNS):
    """``table`` with the file columns resolved against ``star`` and made absolute (unset stays None)."""
    table = table.copy()
    for column in columns:
        if column in table.columns:
            table[column] = [str(resolve_path(v, star, column).resolve()) if is_set(v) else "None"
                             for v in table[column]]
    return table


def copy_tomogram_star(source: str | os.PathLike, output_star: str | os.PathLike) -> Path:
    """A given tomograms.star as the run's own: its own values, its paths made absolute (valid from anywhere)."""
    write_star(absolute_paths(read_tomogram_star(source), source), output_star)
    return Path(output_star)
