"""Gold-standard resolution (paper, Fig. 3b): two networks from random halves, their FSC.

The subtomograms were split at extraction (rlnRandomSubset); ``refine --halves`` trained one
network per half. Each network corrects the whole tomogram; the directional FSC between the two
corrected tomograms measures how consistently two independent trainings restore each direction.
Note what it measures: consistency between independent halves, not agreement with the truth —
both predictions see the same input tomogram, so shared noise and shared artefacts correlate too;
on phantoms the benchmark also compares with the ground truth.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..io.errors import InputError
from ..io.log import get_logger
from ..io.mrc import read_volume, write_volume
from ..io.star import is_set, read_tomogram_star, resolve_path, select_rows, write_star

RAW_HALF_COLUMNS = ("rlnTomoReconstructedTomogramHalf1", "rlnTomoReconstructedTomogramHalf2")
_PATH_COLUMNS = ("rlnMicrographName", "rlnDeconvTomoName", "rlnMaskName", *RAW_HALF_COLUMNS)


def _models(result_dir: Path) -> tuple[Path, Path]:
    paths = tuple(result_dir / f"half{h}" / "model_final.keras" for h in (1, 2))
    for p in paths:
        if not p.is_file():
            raise InputError(f"{p}: half model not found; run 'isonet refine --halves --result-dir {result_dir}' to "
                             "the end first.")
    return paths  # type: ignore[return-value]


def _fsc(call_step, a, b, out_json: Path, mask, cone_angle, log_level) -> dict:
    args = [a, b, "-o", out_json, "--plot", out_json.with_suffix(".png"), "--cone-angle", cone_angle,
            "--log-level", log_level]
    if mask:
        args += ["--mask", mask]
    call_step("fsc", args)
    return json.loads(out_json.read_text())


def run_gold_standard(tomo_star, result_dir, output_dir, *, cube_size=96, crop_size=128, batch_size=None, mask=None,
                      cone_angle=20.0, average=True, use_deconv_tomo=True, output_star=None, precision="auto",
                      gpus=None, tomo_idx=None, log_level="info") -> Path:
    """Predict with both half networks, FSC, record in the STAR; returns the STAR written."""
    from ..cli._invoke import call_step

    log = get_logger("gold-standard")
    result_dir, output_dir = Path(result_dir), Path(output_dir)
    model1, model2 = _models(result_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    star_out = Path(output_star or tomo_star)
    work_star = output_dir / ".gold_standard_work.star"
    common = ["--output-dir", output_dir, "--cube-size", cube_size, "--crop-size", crop_size, "--log-level", log_level,
              "--precision", precision, "--use-deconv-tomo" if use_deconv_tomo else "--no-use-deconv-tomo"]
    if batch_size:
        common += ["--batch-size", batch_size]
    if gpus is not None:
        common += ["--gpus", gpus]
    only = ["--tomo-idx", tomo_idx] if tomo_idx else []
    # the STAR's relative paths stay valid from the work copy: resolve them first
    original = read_tomogram_star(tomo_star)
    table = original.copy()
    for column in _PATH_COLUMNS:
        if column in table.columns:
            table[column] = [str(resolve_path(v, tomo_star, column).resolve()) if is_set(v) else "None"
                             for v in table[column]]
    write_star(table, work_star)
    for half, model in ((1, model1), (2, model2)):
        call_step("predict", [work_star, model, "--half", half, *common, *only])

    table = read_tomogram_star(work_star)
    rows = select_rows(table, tomo_idx, work_star)
    if "rlnGoldStandardFsc" not in table.columns:
        table["rlnGoldStandardFsc"] = "None"
    for i in rows:
        row = table.iloc[i]
        stem = Path(str(row["rlnCorrectedTomoHalf1"])).name.removesuffix("_half1_corrected.mrc")
        row_mask = mask
        if row_mask is None and "rlnMaskName" in table.columns and is_set(row["rlnMaskName"]):
            row_mask = row["rlnMaskName"]
        out_json = output_dir / f"{stem}_fsc.json"
        result = _fsc(call_step, row["rlnCorrectedTomoHalf1"], row["rlnCorrectedTomoHalf2"], out_json, row_mask,
                      cone_angle, log_level)
        table.at[i, "rlnGoldStandardFsc"] = str(out_json)
        r = result["resolution_A"]["0.143"]
        log.info("rlnIndex %s gold-standard resolution at 0.143: x %s, y %s, z %s Å",
                 row["rlnIndex"], r["x"], r["y"], r["z"])
        if average:
            a = read_volume(row["rlnCorrectedTomoHalf1"], "corrected half")
            b = read_volume(row["rlnCorrectedTomoHalf2"], "corrected half")
            mean_path = output_dir / f"{stem}_corrected.mrc"
            write_volume(mean_path, (a.data + b.data) / 2.0, a.voxel_size)
            table.at[i, "rlnCorrectedTomoName"] = str(mean_path)
        if all(c in table.columns and is_set(row[c]) for c in RAW_HALF_COLUMNS):
            _even_odd(call_step, table, i, row, model1, model2, output_dir, row_mask, cone_angle, common, log_level,
                      stem)
    for column in _PATH_COLUMNS:  # keep the user's own paths as they were written
        if column in original.columns:
            table[column] = original[column]
    write_star(table, star_out)
    work_star.unlink(missing_ok=True)
    log.info("wrote %s", star_out)
    return star_out


def _even_odd(call_step, table, i, row, model1, model2, output_dir, mask, cone_angle, common, log_level, stem):
    """FSC of RELION 5 even/odd half tomograms, raw and corrected (half-1 network on even, half-2 on odd)."""
    import pandas as pd

    raw = [row[c] for c in RAW_HALF_COLUMNS]
    raw_json = output_dir / f"{stem}_raw_halves_fsc.json"
    _fsc(call_step, raw[0], raw[1], raw_json, mask, cone_angle, log_level)
    table.loc[i, "rlnRawHalvesFsc"] = str(raw_json)
    corrected = []
    for half, (model, source) in enumerate(((model1, raw[0]), (model2, raw[1])), start=1):
        one = output_dir / f".{stem}_evenodd{half}.star"
        sub = output_dir / f"evenodd{half}"
        write_star(pd.DataFrame({"rlnIndex": [1], "rlnMicrographName": [source],
                                 "rlnPixelSize": [row["rlnPixelSize"]]}), one)
        args = list(common)
        args[args.index("--output-dir") + 1] = sub
        call_step("predict", [one, model, *args])
        corrected.append(read_tomogram_star(one)["rlnCorrectedTomoName"].iloc[0])
        one.unlink(missing_ok=True)
    cor_json = output_dir / f"{stem}_corrected_halves_fsc.json"
    _fsc(call_step, corrected[0], corrected[1], cor_json, mask, cone_angle, log_level)
    table.loc[i, "rlnCorrectedHalvesFsc"] = str(cor_json)
