#!/usr/bin/env nextflow
/*
 * isonet-nf: IsoNet missing-wedge correction and denoising of cryo-electron tomograms.
 *
 *   nextflow run main.nf -profile apptainer,gpu --input tomograms/ --outdir results
 *   nextflow run main.nf --help
 *
 * This file checks the parameters against nextflow_schema.json and wires: the steps are in
 * workflows/isonet.nf, the recursive refine in subworkflows/local/refine/, one process per step
 * in modules/local/<step>/, and every parameter in nextflow.config.
 */

nextflow.preview.recursion = true
// topic channels (the versions of the steps) are a preview feature before Nextflow 25.04, whose
// stable topics no longer know the flag
if (!nextflow.version.matches('>=25.04.0')) {
    nextflow.preview.topic = true
}

include { ISONET                                    } from './workflows/isonet'
include { PIPELINE_INITIALISATION; helpText          } from './subworkflows/local/utils_isonet/main'

workflow {
    main:
    def schema = "${projectDir}/nextflow_schema.json"
    if (params.help) {
        log.info helpText(schema, 'nextflow run main.nf -profile <engine>[,gpu] --input tomograms/ --outdir results [--option value ...]')
        exit 0
    }
    def input = params.input ? file(params.input.toString()) : null
    def starInput = input != null && input.name.toLowerCase().endsWith('.star')
    PIPELINE_INITIALISATION(params, schema, params.validate_params, workflow.profile, starInput)
    ISONET(params.input, params)
}
