"""Gold-standard resolution (paper, Fig. 3b): two networks from random halves, their FSC.

The subtomograms were split at extraction (rlnRandomSubset); ``refine --halves`` trained one
network per half. Each network corrects the whole tomogram; the directional FSC between the two
corrected tomograms measures how consistently two independent trainings restore each direction.
Note what it measures: consistency between independent halves, not agreement with the truth —
both predictions see the same input tomogram, so shared noise and shared artefacts correlate too;
on phantoms the benchmark also compares with the ground truth.
Each FSC is given its row's missing wedge (:mod:`.row_wedge`), so it also reports how consistently
the directions the tilt series never measured are restored, next to those it did.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..core.volume_checks import entering_tomogram
from ..core.wedge import Wedge
from ..io.columns import (
    CORRECTED_HALVES,
    CORRECTED_HALVES_FSC,
    CORRECTED_TOMO_HALF1,
    CORRECTED_TOMO_HALF2,
    CORRECTED_TOMO_NAME,
    GOLD_STANDARD_FSC,
    INDEX,
    MASK_NAME,
    PATH_COLUMNS,
    PIXEL_SIZE,
    RAW_HALVES,
    RAW_HALVES_FSC,
    is_set,
)
from ..io.errors import InputError
from ..io.log import get_logger
from ..io.mrc import read_header, read_volume, write_volume
from ..io.params import default
from ..io.star import absolute_paths, read_tomogram_star, select_rows, write_star
from ..network.inference import corrected_file_name
from .fsc import run_fsc
from .predict import Correction, Network, plan_corrections
from .row_wedge import row_wedge


def _models(result_dir: Path) -> tuple[Path, Path]:
    paths = tuple(result_dir / f"half{h}" / "model_final.keras" for h in (1, 2))
    for p in paths:
        if not p.is_file():
            raise InputError(f"{p}: half model not found; run 'isonet refine --halves --result-dir {result_dir}' to "
                             "the end first.")
    return paths  # type: ignore[return-value]


class _Fsc:
    """The FSC settings every pair of this run shares; each call writes <out>.json and <out>.png.

    ``wedge``: the tomogram's missing wedge (:meth:`with_wedge` sets it per row) for the measured/wedge split.
    """

    def __init__(self, cone_angle: float, wedge: Wedge | None = None):
        self.cone_angle, self.wedge = cone_angle, wedge

    def with_wedge(self, wedge: Wedge | None) -> _Fsc:
        """The same settings for a tomogram with this wedge."""
        return _Fsc(self.cone_angle, wedge)

    def __call__(self, a, b, out_json: Path, mask) -> dict:
        return run_fsc(a, b, out_json, mask=mask or None, cone_angle=self.cone_angle, plot=out_json.with_suffix(".png"),
                       wedge=self.wedge)


def run_gold_standard(tomo_star, result_dir, output_dir, *, cube_size: int = default("predict_cube_size"),
                      crop_size: int = default("predict_crop_size"), batch_size: int | None = None, mask=None,
                      cone_angle: float = default("cone_angle"), average: bool = True,
                      use_deconv_tomo: bool = default("use_deconv_tomo"), output_star=None,
                      precision: str = default("precision"), gpus: str | None = None,
                      tomo_idx: str | None = None) -> Path:
    """Predict with both half networks, FSC (JSON and PNG), record in the STAR; returns the STAR written.

    Every tomogram (and every RELION 5 even/odd half) is checked against both models' records
    before either network is loaded.
    """
    result_dir, output_dir = Path(result_dir), Path(output_dir)
    networks = [Network(model, cube_size=cube_size, crop_size=crop_size, batch_size=batch_size or None,
                        precision=precision, gpus=gpus) for model in _models(result_dir)]
    output_dir.mkdir(parents=True, exist_ok=True)
    star_out = Path(output_star or tomo_star)
    original = read_tomogram_star(tomo_star)
    rows = select_rows(original, tomo_idx, tomo_star)
    cache: dict[Path, Wedge] = {}  # each row's wedge, read before any prediction so a bad .tlt fails early
    wedges = {i: row_wedge(original.iloc[i], tomo_star, cache) for i in rows}
    table = absolute_paths(original, tomo_star)  # the outputs name the inputs as absolute paths
    planned = plan_corrections(table, rows, tomo_star, output_dir, use_deconv_tomo=use_deconv_tomo)
    even_odd = _even_odd_plan(table, rows, output_dir)
    for half, network in enumerate(networks, start=1):
        for job in planned + [pair[half - 1] for pair in even_odd.values()]:
            job.check(network)
    for half, network in enumerate(networks, start=1):
        network.load(len(planned) + len(even_odd))
        column = CORRECTED_HALVES[half - 1]
        if column not in table.columns:
            table[column] = "None"
        for job in planned:
            half_job = replace(job, out=output_dir / corrected_file_name(job.path.name, half))
            half_job.run(network)
            table.at[job.row, column] = str(half_job.out)
    if GOLD_STANDARD_FSC not in table.columns:
        table[GOLD_STANDARD_FSC] = "None"
    fsc = _Fsc(cone_angle)
    for i in rows:
        _row(table, i, mask, fsc.with_wedge(wedges[i]), average, output_dir, even_odd.get(i), networks)
    for column in PATH_COLUMNS:  # keep the user's own paths as they were written
        if column in original.columns:
            table[column] = original[column]
    write_star(table, star_out)
    if average:  # rows from a RELION 5 project: the mean correction (and both halves) as RELION's tomogram set
        from .relion5_out import write_relion5_star

        write_relion5_star(table, star_out, output_dir, with_halves=True)
    get_logger("gold-standard").info("wrote %s", star_out)
    return star_out


def _even_odd_plan(table, rows: list[int], output_dir: Path) -> dict[int, tuple[Correction, Correction]]:
    """The RELION 5 even/odd half tomograms of the rows that name them, each checked as a tomogram of its
    own: the half-1 network corrects the even half into evenodd1/, the half-2 network the odd one into evenodd2/.
    """
    plan = {}
    for i in rows:
        row = table.iloc[i]
        if not all(c in table.columns and is_set(row[c]) for c in RAW_HALVES):
            continue
        pair = []
        for half, column in enumerate(RAW_HALVES, start=1):
            path = Path(str(row[column]))
            pair.append(Correction(i, row[INDEX], path, column, read_header(path, "tomogram"),
                                   output_dir / f"evenodd{half}" / corrected_file_name(path.name),
                                   float(row[PIXEL_SIZE]),
                                   fill=entering_tomogram(path, {})))  # no recorded choice: checked in full
        plan[i] = (pair[0], pair[1])
    return plan


def _row(table, i: int, mask, fsc: _Fsc, average: bool, output_dir: Path,
         even_odd: tuple[Correction, Correction] | None, networks: list[Network]) -> None:
    """One tomogram: the halves' FSC, their mean, and the even/odd FSCs where the STAR names raw halves."""
    row = table.iloc[i]
    stem = Path(str(row[CORRECTED_TOMO_HALF1])).name.removesuffix("_half1_corrected.mrc")
    if mask is None and MASK_NAME in table.columns and is_set(row[MASK_NAME]):
        mask = row[MASK_NAME]
    out_json = output_dir / f"{stem}_fsc.json"
    result = fsc(row[CORRECTED_TOMO_HALF1], row[CORRECTED_TOMO_HALF2], out_json, mask)
    table.at[i, GOLD_STANDARD_FSC] = str(out_json)
    r = result["resolution_A"]["0.143"]
    split = f", measured {r['measured']}, missing wedge {r['wedge']}" if "wedge" in r else ""
    get_logger("gold-standard").info("rlnIndex %s gold-standard resolution at 0.143: x %s, y %s, z %s%s Å",
                                     row[INDEX], r["x"], r["y"], r["z"], split)
    if average:
        a = read_volume(row[CORRECTED_TOMO_HALF1], "corrected half")
        b = read_volume(row[CORRECTED_TOMO_HALF2], "corrected half")
        mean_path = output_dir / f"{stem}_corrected.mrc"
        write_volume(mean_path, (a.data + b.data) / 2.0, a.voxel_size)
        table.loc[i, CORRECTED_TOMO_NAME] = str(mean_path)
    if even_odd is not None:
        _even_odd(table, i, even_odd, networks, output_dir, mask, fsc, stem)


def _even_odd(table, i: int, pair: tuple[Correction, Correction], networks: list[Network], output_dir: Path, mask,
              fsc: _Fsc, stem: str) -> None:
    """FSC of RELION 5 even/odd half tomograms, raw and corrected (half-1 network on even, half-2 on odd)."""
    raw_json = output_dir / f"{stem}_raw_halves_fsc.json"
    fsc(str(pair[0].path), str(pair[1].path), raw_json, mask)
    table.loc[i, RAW_HALVES_FSC] = str(raw_json)
    for job, network in zip(pair, networks):
        job.run(network)
    cor_json = output_dir / f"{stem}_corrected_halves_fsc.json"
    fsc(str(pair[0].out), str(pair[1].out), cor_json, mask)
    table.loc[i, CORRECTED_HALVES_FSC] = str(cor_json)
