// ISONET_PREPARE_STAR: tomograms.star and the per-tomogram plan, from a folder of tomograms (IsoNet's
// prepare_star), a RELION 5 tomograms.star (its tilt angles, CTF and voxel size; docs/relion5.md) or
// an IsoNet tomograms.star.
//
// published/tomograms.star names the tomograms where they live (`source`, the input folder's path or
// URI; a RELION project's or an IsoNet STAR's own paths, absolute) and its .tlt files in
// published/tilt_angles/, so the published STAR works outside the pipeline. plan/ holds plan.csv,
// one row per tomogram that the workflow scatters over, and each tomogram's one-row STAR, which
// names its files by bare name (the per-tomogram tasks stage them beside it, tilt angles under
// tilt_angles/).
process ISONET_PREPARE_STAR {
    tag "${meta.id}"
    label 'process_low'
    container 'isonet-nf:0.1.0-cpu'

    input:
    // a folder: its tomograms (.mrc/.rec, with any .tlt beside them) and its path; a STAR (RELION 5
    // or IsoNet): the folder it is read from (staged so a container sees it), the STAR's path, and the
    // folder its relative paths start from (the launch folder, as IsoNet reads them; '' for a folder)
    tuple val(meta), path(tomos, stageAs: 'tomograms/*'), val(source), val(base)

    output:
    tuple val(meta), path('published/plan/plan.csv'), path('published/plan/*.star'), path('published/tilt_angles/*.tlt', arity: '0..*'), emit: plan
    tuple val(meta), path('published/tomograms.star'), path('published/tilt_angles/*.tlt', arity: '0..*'), emit: published
    tuple val("${task.process}"), val('isonet-prepare-star'), eval('set -o pipefail; isonet-prepare-star --version | sed "s/.* //"'), topic: versions, emit: versions

    script:
    def args = task.ext.args ?: ''
    def star = source.toString().toLowerCase().endsWith('.star')
    def input = star ? "'${source}'" : '"${here}/tomograms"'
    def where = star ? '' : "--named-in '${source}'"
    """
    here="\${PWD}"
    out="\${here}/published"
    mkdir -p "\${out}"
    (cd "${base ?: '.'}" && isonet-prepare-star ${input} --output-star "\${out}/tomograms.star" ${where} --tilt-folder tilt_angles --plan-folder "\${out}/plan" ${args})
    """

    stub:
    // the real plan (published/plan/plan.csv, published/tomograms.star: the later stubs scatter over
    // it) from the same files, without reading their data
    def args = task.ext.args ?: ''
    def star = source.toString().toLowerCase().endsWith('.star')
    def input = star ? "'${source}'" : '"${here}/tomograms"'
    def where = star ? '' : "--named-in '${source}'"
    """
    here="\${PWD}"
    out="\${here}/published"
    mkdir -p "\${out}"
    (cd "${base ?: '.'}" && isonet-prepare-star ${input} --output-star "\${out}/tomograms.star" ${where} --tilt-folder tilt_angles --plan-folder "\${out}/plan" ${args} --no-check-data)
    mkdir -p published/tilt_angles/ && test -f published/plan/plan.csv -a -f published/tomograms.star
    """
}
