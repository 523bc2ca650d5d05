#!/usr/bin/env nextflow
/*
 * isonet-nf: IsoNet missing-wedge correction and denoising of cryo-electron tomograms.
 *
 *   nextflow run main.nf -profile apptainer,gpu --input tomograms/ --outdir results
 *
 * This file only wires: the steps are in workflows/isonet.nf, the recursive refine in
 * subworkflows/local/refine/, one process per step in modules/local/<step>/, and every
 * parameter in nextflow.config (described in nextflow_schema.json and docs/pipeline.md).
 */

nextflow.preview.recursion = true

include { ISONET } from './workflows/isonet'

workflow {
    main:
    ISONET(
        params.input,
        [
            run_name        : params.run_name,
            outdir          : params.outdir,
            phantom         : params.phantom,
            defocus         : params.defocus,
            skip_deconv     : params.skip_deconv,
            use_deconv_tomo : params.use_deconv_tomo,
            iterations      : params.iterations,
            halves          : params.halves,
            pretrained_model: params.pretrained_model,
            fsc_use_mask    : params.fsc_use_mask,
            unet_depth      : params.unet_depth,
            predict_cube    : params.predict_cube_size,
            predict_crop    : params.predict_crop_size,
            skip_report     : params.skip_report
        ]
    )
}
