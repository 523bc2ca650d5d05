// A task that needs more memory than its first attempt asks for, run by tests/test_slurm_runtime.py
// under the project's own configuration (-c nextflow.config -profile slurm): SLURM's memory limit
// kills it (exit 137), the retry rule of conf/base.config runs it again with twice the memory,
// and the second attempt completes. It holds the memory for 3 s, longer than a polling limit
// (JobAcctGatherParams=OverMemoryKill, each second here) takes to see it.
params.need_mb = 450
params.python = 'python3'

process GROW {
    memory { 300.MB * task.attempt }

    output:
    stdout

    script:
    """
    ${params.python} -c "import time; held = b'x' * (${params.need_mb} * 2 ** 20); time.sleep(3); print(len(held) // 2 ** 20, 'MB held')"
    """
}

workflow {
    GROW().view()
}
