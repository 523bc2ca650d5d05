"""isonet predict: correct whole tomograms with a trained network."""

import click

from ._common import log_level_option, option, precision_option, step, tomo_idx_option


@step("predict")
@click.argument("tomo_star", type=click.Path(dir_okay=False, path_type=str))
@click.argument("model", type=click.Path(path_type=str))
@option("--output-dir", default="corrected_tomos", help="Folder for the corrected tomograms.")
@option("--cube-size", type=click.IntRange(min=1), default=96,
        help="Tile stride in voxels; divisible by 2**depth. IsoNet's 64 with crop 96 has the same 8-voxel "
             "margin and 16-voxel blend but sends 40 % more voxels through the network.")
@option("--crop-size", type=click.IntRange(min=1), default=128,
        help="Tile edge the network sees, in voxels; at least cube + 8. More than cube + 16 hides tile edges better.")
@option("--batch-size", type=click.IntRange(min=1), default=None,
        help="Tiles per network call [default: 4 per GPU, 4 on the CPU]; halved automatically when memory runs out.")
@tomo_idx_option()
@option("--use-deconv-tomo/--no-use-deconv-tomo", default=True,
        help="Correct rlnDeconvTomoName where it is set and exists, else rlnMicrographName.")
@option("--half", type=click.Choice(["1", "2"]), default=None,
        help="Gold-standard half: write <name>_half1_corrected.mrc and fill rlnCorrectedTomoHalf1 (or 2).")
@option("--output-star", default=None, help="STAR file to write [default: update TOMO_STAR in place].")
@precision_option()
@option("--gpus", default=None, metavar="LIST",
        help='GPUs to use, e.g. 0 or 0,1; "cpu" or "" for the CPU [default: every visible GPU].')
@log_level_option()
def command(tomo_star, model, output_dir, cube_size, crop_size, batch_size, tomo_idx, use_deconv_tomo, half,
            output_star, precision, gpus, log_level):
    """Correct the tomograms of TOMO_STAR with the network in MODEL (.keras) and record them in the STAR file."""
    import time
    from pathlib import Path

    from ..io.errors import InputError
    from ..io.log import get_logger
    from ..io.mrc import read_header, read_volume, write_volume
    from ..io.star import read_tomogram_star, select_rows, tomogram_source, write_star
    from ..network import devices
    from ..network.inference import check_tiling, corrected_file_name

    log = get_logger()
    half = int(half) if half else None
    column = f"rlnCorrectedTomoHalf{half}" if half else "rlnCorrectedTomoName"
    check_tiling(cube_size, crop_size, 0)  # the size rules that do not depend on the network

    # === Inputs, checked before the network is loaded ===
    table = read_tomogram_star(tomo_star)
    rows = select_rows(table, tomo_idx, tomo_star)
    jobs = []
    for i in rows:
        row = table.iloc[i]
        path, source = tomogram_source(row.to_dict(), tomo_star, use_deconv_tomo)
        header = read_header(path, "tomogram")
        out = Path(output_dir) / corrected_file_name(path.name, half)
        jobs.append((i, path, source, header, out))
    outputs = [str(job[4]) for job in jobs]
    if len(set(outputs)) != len(outputs):
        twice = next(o for o in outputs if outputs.count(o) > 1)
        raise InputError(f"{tomo_star}: two tomograms would both be written to {twice}; "
                         "give them different file names.")
    if not Path(model).is_file():
        raise InputError(f"{model}: model file not found; give the .keras file written by refine (e.g. "
                         "results/model_final.keras).")

    # === Devices first, then the framework and the network ===
    gpu_ids = devices.configure(gpus)
    from ..network.inference import model_predict_fn, predict_tomogram
    from ..network.unet import load_model, unet_depth

    n_gpus = devices.usable_gpus()
    if gpu_ids and n_gpus == 0:
        log.warning("GPU %s requested but the framework sees none; predicting on the CPU", ",".join(gpu_ids))
    with devices.distribution_scope():
        network = load_model(model)
    check_tiling(cube_size, crop_size, unet_depth(network))
    if batch_size is None:
        batch_size = 4 * max(1, n_gpus)
    precision = devices.resolve_precision(precision)
    predict_fn = model_predict_fn(network, precision=precision)
    import keras

    log.info("predicting %d tomogram(s) on %s (%s, %s), batch size %d, cube %d, crop %d", len(jobs),
             f"{n_gpus} GPU(s)" if n_gpus else "the CPU", keras.backend.backend(), precision, batch_size,
             cube_size, crop_size)

    # === One tomogram at a time; the STAR file is rewritten after each ===
    if column not in table.columns:
        table[column] = "None"
    star_out = output_star or tomo_star
    for i, path, source, header, out in jobs:
        log.info("rlnIndex %s: %s (%s, %s) -> %s", table.at[i, "rlnIndex"], path, source,
                 "×".join(map(str, header.shape[::-1])), out)
        start = time.perf_counter()
        volume = read_volume(path, "tomogram")
        corrected = predict_tomogram(predict_fn, volume.data, cube=cube_size, crop=crop_size, batch_size=batch_size,
                                     overwrite_input=True)  # read_volume's own copy
        voxel_size = volume.voxel_size or float(table.at[i, "rlnPixelSize"])
        del volume
        write_volume(out, corrected, voxel_size)
        seconds = time.perf_counter() - start
        log.info("done %s in %.1f s (%.2f M voxels/s)", out.name, seconds, corrected.size / seconds / 1e6)
        del corrected
        table.at[i, column] = str(out)
        write_star(table, star_out)
    log.info("wrote %s", star_out)
