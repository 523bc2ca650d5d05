#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests/test_slurm_runtime.py (called by
# tests/install_tools.sh; needs root, as on CI). It installs Debian's slurm-wlm and munge where
# missing, writes /etc/slurm/slurm.conf sized from this machine (nproc, /proc/meminfo), starts
# munged, slurmctld and slurmd as plain daemons (no systemd here) and waits until the node is idle.
# Run again with everything in place and running, it changes nothing and takes well under a second.
#
# Memory is enforced as on a facility: task/cgroup with ConstrainRAMSpace (the kernel kills the
# task's process, whose exit status 137 reaches Nextflow). Without a writable cgroup v1 memory
# controller it falls back to jobacct_gather's OverMemoryKill (polled each second, kills the whole
# job step, so Nextflow finds no exit status and does not retry). One placeholder GPU (gres on
# /dev/null) lets a job ask --gres=gpu:1 and get the CUDA_VISIBLE_DEVICES SLURM sets for it.
# Without root it skips the cluster with a message (the SLURM tests then skip with a reason).
set -euo pipefail

say() { echo "install_slurm: $*" >&2; }
conf_dir=/etc/slurm
state_dir=/var/lib/slurm
log_dir=/var/log/slurm

if [[ $(id -u) -ne 0 ]]; then
    say "not root; skipping the local SLURM cluster (tests/test_slurm_runtime.py will skip)"
    exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
        || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

# --- munge: a key, its runtime folder, the daemon ---------------------------------------------
install -d -o munge -g munge -m 700 /etc/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
install -d -o munge -g munge -m 755 /run/munge
munge_works() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_works; then
    runuser -u munge -- /usr/sbin/munged </dev/null >/dev/null 2>&1
    for _ in $(seq 50); do munge_works && break; sleep 0.2; done
    munge_works || { say "munged did not start (see /var/log/munge/munged.log)"; exit 1; }
fi

# --- slurm.conf and cgroup.conf, sized from this machine ---------------------------------------
node="$(hostname -s)"
cpus="$(nproc)"
memory_mb="$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)"
probe=/sys/fs/cgroup/memory/isonet-slurm-probe.$$
if mkdir "$probe" 2>/dev/null; then
    rmdir "$probe"
    memory_enforcement="ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
JobAcctGatherType=jobacct_gather/linux"
    cgroup_conf="CgroupPlugin=cgroup/v1
IgnoreSystemd=yes
ConstrainRAMSpace=yes
ConstrainSwapSpace=no"
else
    say "no writable cgroup v1 memory controller: memory enforced by OverMemoryKill (polling) instead;" \
        "a job killed for memory then leaves Nextflow no exit status, so the memory-retry test fails"
    memory_enforcement="ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherParams=OverMemoryKill"
    cgroup_conf=""
fi
slurm_conf="# written by isonet-nf tests/slurm/install.sh: a one-node test cluster
ClusterName=isonet-test
SlurmctldHost=${node}(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=${state_dir}/slurmctld
SlurmdSpoolDir=${state_dir}/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=${log_dir}/slurmctld.log
SlurmdLogFile=${log_dir}/slurmd.log
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
${memory_enforcement}
JobAcctGatherFrequency=task=1
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=${log_dir}/jobcomp.log
MinJobAge=3600
KillWait=10
ReturnToService=2
GresTypes=gpu
NodeName=${node} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${memory_mb} Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP"

changed=false
write_if_changed() {  # PATH CONTENT: replace PATH (via a temporary name) only when CONTENT differs
    if [[ ! -f "$1" ]] || [[ "$(cat "$1")" != "$2" ]]; then
        printf '%s\n' "$2" > "$1.part" && mv "$1.part" "$1"
        changed=true
    fi
}
install -d "$conf_dir"
install -d -o slurm -g slurm "$state_dir/slurmctld" "$log_dir"
install -d "$state_dir/slurmd"
write_if_changed "$conf_dir/slurm.conf" "$slurm_conf"
# one placeholder GPU (no device behind it: /dev/null), so that a job asking --gres=gpu:1 runs
# and gets the CUDA_VISIBLE_DEVICES that SLURM sets for its GPU
write_if_changed "$conf_dir/gres.conf" "NodeName=${node} Name=gpu File=/dev/null"
if [[ -n "$cgroup_conf" ]]; then write_if_changed "$conf_dir/cgroup.conf" "$cgroup_conf"; fi

# --- the daemons ---------------------------------------------------------------------------------
running() {  # NAME: the daemon whose pid file /run/NAME.pid names a live NAME process
    local pid
    pid="$(cat "/run/$1.pid" 2>/dev/null)" || return 1
    [[ -n "$pid" && "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$1"* ]]
}
stop() {
    running "$1" || return 0
    local pid
    pid="$(cat "/run/$1.pid")"
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    say "$1 (pid $pid) did not stop in 10 s"; exit 1
}
if $changed; then stop slurmd; stop slurmctld; fi
running slurmctld || /usr/sbin/slurmctld </dev/null >/dev/null 2>&1
running slurmd || /usr/sbin/slurmd </dev/null >/dev/null 2>&1

# --- ready: the node takes jobs (every SLURM call bounded: an unanswering slurmctld cannot hang this)
state=""
resumed=false
deadline=$((SECONDS + 30))
while ((SECONDS < deadline)); do
    state="$(timeout 5 sinfo -h -N -n "$node" -o %T 2>/dev/null || true)"
    case "$state" in
        idle|mixed|allocated|completing) break ;;
        down*|drain*)
            if ! $resumed; then timeout 5 scontrol update nodename="$node" state=resume 2>/dev/null || true; fi
            resumed=true ;;
    esac
    sleep 0.5
done
case "$state" in
    idle|mixed|allocated|completing) ;;
    *)
        say "node $node is '${state:-not answering}' after 30 s, not idle; the logs:"
        tail -n 5 "$log_dir/slurmctld.log" "$log_dir/slurmd.log" >&2 || true
        exit 1 ;;
esac
say "node $node ($cpus CPUs, $memory_mb MB) is $state; slurm.conf $($changed && echo written || echo unchanged)"
