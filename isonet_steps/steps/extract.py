"""extract: cut training subtomograms at random places of each tomogram's mask into a subtomo.star."""

from __future__ import annotations

import os
import re
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.extract import (
    check_box_sizes,
    check_fits,
    count_candidates,
    crop_box,
    odd_halves,
    pick_centres,
    pick_slab_halves,
    random_halves,
    slab_counts,
    slab_width,
    tomogram_rng,
)
from ..core.volume_checks import check_halves, entering_tomogram, fill_nonfinite
from ..io.atomic import check_writable_target, make_output_folder, write_bytes
from ..io.columns import (
    COORDINATE_X,
    COORDINATE_Y,
    COORDINATE_Z,
    CROP_SIZE,
    CUBE_SIZE,
    DECONV_TOMO_NAME,
    DECONVOLVED,
    IMAGE_NAME,
    IMAGE_NAME_HALF2,
    INDEX,
    MASK_NAME,
    MICROGRAPH_NAME,
    NUMBER_SUBTOMO,
    PIXEL_SIZE,
    RANDOM_SUBSET,
    RAW_HALVES,
    SUBTOMO_INDEX,
    TILT_ANGLE_FILE,
    TILT_MAX,
    TILT_MIN,
    is_set,
)
from ..io.errors import InputError
from ..io.log import get_logger, progress
from ..io.mrc import open_memmap, release_pages, write_volume
from ..io.params import default
from ..io.star import read_tomogram_star, resolve_path, select_rows, tomogram_source, write_star
from ..io.tilt_angles import read_tilt_angles


@dataclass
class _Plan:
    """What one tomogram row will give: validated before anything is written."""

    row: dict
    name: str
    source: Path
    mask_path: Path | None
    shape: tuple[int, ...]
    voxel_size: float
    number: int
    counts: np.ndarray
    half_counts: dict[int, np.ndarray] | None = None  # slab split: valid centres per half, else None
    raw_halves: tuple[Path, Path] | None = None  # noise2noise: the boxes are cut from these (even/odd) instead
    deconvolved: bool = False  # the source is the row's rlnDeconvTomoName
    fills: dict[Path, float | None] = field(default_factory=dict)  # what each file's NaN/Inf voxels read as

    @property
    def cuts_deconvolved(self) -> bool:
        """Whether the boxes come from a deconvolved tomogram (noise2noise cuts the raw halves)."""
        return self.deconvolved and self.raw_halves is None




def _raw_halves(row: dict, star, name: str, shape: tuple[int, ...]) -> tuple[Path, Path]:
    """The row's two raw half tomograms (noise2noise), checked to exist and to match the tomogram's shape."""
    if not all(is_set(row.get(c)) for c in RAW_HALVES):
        raise InputError(f"{star}: {name} has no {' / '.join(RAW_HALVES)}, so --noise2noise has no even/odd "
                         "halves to cut; give a RELION 5 tomograms.star (its reconstructions have halves), add both "
                         "columns, or run without --noise2noise.")
    paths = tuple(Path(resolve_path(row[c], star, c, "half tomogram")) for c in RAW_HALVES)
    check_halves(paths[0], paths[1])
    for path in paths:
        with open_memmap(path, "half tomogram") as vol:
            half_shape = tuple(int(s) for s in vol.data.shape)
        if half_shape != shape:
            raise InputError(f"{path}: half tomogram shape {half_shape} differs from {name}'s {shape} (Z,Y,X); "
                             "give the halves of this same reconstruction.")
    return paths[0], paths[1]


def _tomogram(row: dict, star, crop: int, cube: int,
              use_deconv_tomo: bool) -> tuple[Path, tuple[int, ...], float, bool]:
    """The row's tomogram, its shape (checked against the box), voxel size (the header's, else the STAR's)
    and whether it is the deconvolved one.
    """
    source, column = tomogram_source(row, star, use_deconv_tomo)
    with open_memmap(source, "tomogram") as vol:
        shape = tuple(int(s) for s in vol.data.shape)
        voxel_size = vol.voxel_size
    check_fits(shape, crop, cube, str(source))
    pixel = float(row[PIXEL_SIZE])
    if voxel_size <= 0:
        voxel_size = pixel
    elif abs(voxel_size - pixel) > 0.01 * pixel:
        get_logger("extract").warning("%s: header voxel size %.3f Å differs from rlnPixelSize %.3f Å; subtomograms "
                                      "keep the header's", source, voxel_size, pixel)
    return source, shape, voxel_size, column == DECONV_TOMO_NAME


def _mask_counts(mask_path: Path, shape: tuple[int, ...], source: Path, crop: int, split: str):
    """Valid centres per voxel column of the mask (and per slab half); errors for a mask with none."""
    with open_memmap(mask_path, "mask") as mask:
        mshape = tuple(int(s) for s in mask.data.shape)
        if mshape != shape:
            raise InputError(f"{mask_path}: mask shape {mshape} differs from tomogram {source} shape {shape} (Z,Y,X); "
                             f"make the mask from this tomogram (isonet make-mask).")
        counts = count_candidates(mask.data, shape, crop)
        half_counts = slab_counts(mask.data, shape, crop) if split == "slabs" and counts.sum() else None
        release_pages(mask.data)
        if counts.sum() == 0:
            if not any(np.any(mask.data[z]) for z in range(shape[0])):
                raise InputError(f"{mask_path}: mask is empty (no non-zero voxel); remake it with lower thresholds "
                                 "or fix rlnMaskName.")
            raise InputError(f"{mask_path}: mask has no voxel at least {crop // 2} voxels from the tomogram's edges, "
                             f"so no {crop}-voxel box fits; use a smaller --cube-size/--crop-size or a looser mask.")
    return counts, half_counts


def _check_number(plan: _Plan, crop: int) -> None:
    """Enough valid centres for the subtomograms asked for (per half with slabs)."""
    where = plan.mask_path if plan.mask_path is not None else plan.source
    if plan.half_counts is not None:
        per_half = {h: int(c.sum()) for h, c in plan.half_counts.items()}
        wanted = (plan.number + 1) // 2
        if min(per_half.values()) < wanted:
            raise InputError(
                f"{where}: --split-halves slabs leaves {per_half[1]} / {per_half[2]} valid centres for half 1 / 2, "
                f"fewer than the {wanted} subtomograms each half needs (slabs are "
                f"{slab_width(plan.shape[2], crop)} voxels wide along X); ask for fewer subtomograms, use a looser "
                f"mask, or --split-halves random.")
        return
    total = int(plan.counts.sum())
    if plan.number > total:
        raise InputError(f"{where}: more subtomograms ({plan.number}) than the mask allows ({total} valid centres); "
                         f"ask for fewer subtomograms (rlnNumberSubtomo) or use a looser mask.")


def _plan_row(row: dict, star, crop: int, cube: int, use_deconv_tomo: bool, split: str = "random",
              noise2noise: bool = False) -> _Plan:
    name = Path(str(row[MICROGRAPH_NAME])).name
    number = int(row[NUMBER_SUBTOMO]) if NUMBER_SUBTOMO in row else 100
    if number < 0:
        raise InputError(f"{star}: rlnNumberSubtomo {number} for {name} is negative; give how many subtomograms to cut "
                         "(e.g. 100).")
    source, shape, voxel_size, deconvolved = _tomogram(row, star, crop, cube, use_deconv_tomo)
    mask_path = None
    if is_set(row.get(MASK_NAME)):
        mask_path = Path(resolve_path(row[MASK_NAME], star, MASK_NAME))
        counts, half_counts = _mask_counts(mask_path, shape, source, crop, split)
    else:
        get_logger("extract").info("%s: no mask (rlnMaskName unset); centres drawn from the whole tomogram", name)
        counts = count_candidates(None, shape, crop)
        half_counts = slab_counts(None, shape, crop) if split == "slabs" else None
    if is_set(row.get(TILT_ANGLE_FILE)):  # read now: a bad file fails before anything is written
        angle_file = resolve_path(row[TILT_ANGLE_FILE], star, TILT_ANGLE_FILE)
        read_tilt_angles(angle_file)
        row = {**row, TILT_ANGLE_FILE: str(angle_file.absolute())}
    raw = _raw_halves(row, star, name, shape) if noise2noise else None
    fills = {path: entering_tomogram(path, row, what) for path, what in
             ([(source, "tomogram")] if raw is None else [(raw[0], "half tomogram"), (raw[1], "half tomogram")])}
    plan = _Plan(row, name, source, mask_path, shape, voxel_size, number, counts, half_counts, raw, deconvolved, fills)
    _check_number(plan, crop)
    return plan


def _check_names(plans: list[_Plan], star) -> list[str]:
    """The tomograms' file stems, which must differ (they name the subtomograms)."""
    stems: dict[str, str] = {}
    for plan in plans:
        stem = Path(plan.name).stem
        if stem in stems:
            raise InputError(f"{star}: tomograms {stems[stem]} and {plan.row[MICROGRAPH_NAME]} share the name "
                             f"{stem!r}, so their subtomograms would overwrite each other; rename one of the files.")
        stems[stem] = str(plan.row[MICROGRAPH_NAME])
    if sum(plan.number for plan in plans) == 0:
        raise InputError(f"{star}: every selected row has rlnNumberSubtomo 0; nothing to extract.")
    return list(stems)


def _draw(plan: _Plan, crop: int, seed: int, first: int) -> tuple[np.ndarray, np.ndarray]:
    """The plan's box centres and their halves, reproducible from ``(seed, rlnIndex)``."""
    rng = tomogram_rng(seed, int(plan.row[INDEX]))
    with open_memmap(plan.mask_path, "mask") if plan.mask_path else nullcontext() as mask:
        data = None if mask is None else mask.data
        if plan.half_counts is not None:  # slabs: each half from its own columns
            return pick_slab_halves(data, plan.shape, crop, plan.number, rng, plan.half_counts, first)
        centres = pick_centres(data, plan.shape, crop, plan.number, rng, counts=plan.counts)
        return centres, random_halves(len(centres), rng, first=first)


def _subtomo_row(plan: _Plan, number: int, name: str, centre, half: int, cube_size: int, crop: int) -> dict:
    return {
        SUBTOMO_INDEX: number,
        IMAGE_NAME: name,
        CUBE_SIZE: int(cube_size),
        CROP_SIZE: int(crop),
        PIXEL_SIZE: float(plan.row[PIXEL_SIZE]),
        TILT_MIN: float(plan.row[TILT_MIN]),
        TILT_MAX: float(plan.row[TILT_MAX]),
        TILT_ANGLE_FILE: plan.row.get(TILT_ANGLE_FILE, "None"),
        RANDOM_SUBSET: int(half),
        DECONVOLVED: int(plan.cuts_deconvolved),
        MICROGRAPH_NAME: str(plan.row[MICROGRAPH_NAME]),
        COORDINATE_X: int(centre[2]),
        COORDINATE_Y: int(centre[1]),
        COORDINATE_Z: int(centre[0]),
    }


def _cut_from(source: Path, centres, out_names: list[Path], crop: int, voxel_size: float, desc: str,
              fill: float | None = None) -> None:
    """Write the box around each centre of ``source`` to its file, reading the tomogram box by box."""
    with open_memmap(source, "tomogram") as vol:
        data = fill_nonfinite(vol.data, fill)
        for j in progress(range(len(centres)), total=len(centres), desc=desc, unit="subtomo"):
            write_volume(out_names[j], crop_box(data, centres[j], crop), voxel_size)
            release_pages(vol.data)  # a big tomogram is read box by box, never held resident


def _cut(plan: _Plan, centres, halves, folder: Path, subtomo_folder, rows: list[dict], cube_size: int,
         crop: int) -> list[Path]:
    """Write the plan's subtomograms (noise2noise: the same boxes of both halves) and append their STAR rows."""
    stem = Path(plan.name).stem
    names = [folder / f"{stem}_{j:06d}.mrc" for j in range(len(centres))]
    if plan.raw_halves is None:
        _cut_from(plan.source, centres, names, crop, plan.voxel_size, f"extract {stem}", plan.fills.get(plan.source))
        seconds: list[Path] = []
    else:
        seconds = [folder / f"{stem}_{j:06d}_half2.mrc" for j in range(len(centres))]
        for h, (half, outs) in enumerate(zip(plan.raw_halves, (names, seconds)), start=1):
            _cut_from(half, centres, outs, crop, plan.voxel_size, f"extract {stem} half {h}", plan.fills.get(half))
    for j, out in enumerate(names):
        row = _subtomo_row(plan, len(rows) + 1, str(Path(subtomo_folder) / out.name), centres[j], int(halves[j]),
                           cube_size, crop)
        if seconds:
            row[IMAGE_NAME_HALF2] = str(Path(subtomo_folder) / seconds[j].name)
        rows.append(row)
    return names + seconds


def _copy_tilt_angles(plan: _Plan, folder: Path, subtomo_folder) -> Path | None:
    """Copy the row's tilt-angle file beside its subtomograms and name it as they are named.

    subtomo.star and its folder are what refine reads, often elsewhere (a Nextflow task, a
    container): the angles travel with the boxes instead of pointing back into this run.
    """
    if not is_set(plan.row.get(TILT_ANGLE_FILE)):
        return None
    source = Path(str(plan.row[TILT_ANGLE_FILE]))
    copy = folder / f"{Path(plan.name).stem}.tlt"
    if source.resolve() != copy.resolve():
        write_bytes(copy, source.read_bytes())
    plan.row = {**plan.row, TILT_ANGLE_FILE: str(Path(subtomo_folder) / copy.name)}
    return copy


def _remove_stale(folder: Path, stems: list[str], written: set[Path]) -> None:
    """Remove only stale subtomograms of these tomograms from an earlier run (never the folder)."""
    for stem in stems:
        pattern = re.compile(re.escape(stem) + r"_\d{6}(_half2)?\.mrc")
        for old in folder.iterdir():
            if pattern.fullmatch(old.name) and old not in written and old.is_file():
                old.unlink()
                get_logger("extract").debug("removed stale %s", old)


def _first_halves(plans: list[_Plan], first_half: int | None, star) -> list[int]:
    """Who gets each tomogram's odd subtomogram out: balanced over these tomograms, or as the plan says."""
    if first_half is None:
        return odd_halves([plan.number for plan in plans])
    if first_half not in (1, 2) or len(plans) != 1:
        raise InputError(f"{star}: --first-half {first_half} needs 1 or 2 and a STAR of one tomogram (the plan's "
                         f"one-row STARs); this one selects {len(plans)}.")
    return [first_half]


def run_extract(star: str | os.PathLike, *, subtomo_folder: str | os.PathLike = "subtomo",
                subtomo_star: str | os.PathLike = "subtomo.star", cube_size: int = default("cube_size"),
                crop_size: int | None = None, seed: int = default("seed"),
                use_deconv_tomo: bool = default("use_deconv_tomo"), split_halves: str = "random",
                tomo_idx: str | None = None, noise2noise: bool = default("noise2noise"),
                first_half: int | None = None) -> Path:
    """Cut rlnNumberSubtomo subtomograms per chosen row into ``subtomo_folder``; returns the subtomo.star written.

    Every row is checked (files, sizes, masks, counts) before anything is written; the STAR comes last.
    With ``noise2noise`` the same boxes (the centres drawn on the tomogram's mask) are cut from the row's
    raw even/odd half tomograms instead: rlnImageName names half 1's box, rlnImageNameHalf2 half 2's.
    ``first_half``: the half that gets the odd subtomogram out of a one-tomogram STAR (the plan's
    ``first_half``, so that tomogram's halves are those of a run of all tomograms); None: balanced here.
    """
    log = get_logger("extract")
    crop = check_box_sizes(cube_size, crop_size)
    if seed < 0:
        raise InputError(f"--seed {seed} must be >= 0.")
    df = read_tomogram_star(star)
    plans = [_plan_row(df.iloc[i].to_dict(), star, crop, cube_size, use_deconv_tomo, split_halves, noise2noise)
             for i in select_rows(df, tomo_idx, star)]
    stems = _check_names(plans, star)
    check_writable_target(Path(subtomo_folder) / "x.mrc")
    check_writable_target(subtomo_star)
    folder = make_output_folder(subtomo_folder)
    rows: list[dict] = []
    written: set[Path] = set()
    in_half = {1: 0, 2: 0}
    for plan, first in zip(plans, _first_halves(plans, first_half, star)):
        centres, halves = _draw(plan, crop, seed, first)
        log.info("tomogram %d (%s): %d subtomograms of %d³ voxels from %s",
                 int(plan.row[INDEX]), plan.name, len(centres), crop, plan.source)
        angles = _copy_tilt_angles(plan, folder, subtomo_folder)
        written.update(_cut(plan, centres, halves, folder, subtomo_folder, rows, cube_size, crop))
        written.update([angles] if angles else [])
        for half in halves:
            in_half[int(half)] += 1
    _remove_stale(folder, stems, written)
    write_star(pd.DataFrame(rows), subtomo_star)
    log.info("wrote %s: %d subtomograms (half 1: %d, half 2: %d)", subtomo_star, len(rows), in_half[1], in_half[2])
    return Path(subtomo_star)
