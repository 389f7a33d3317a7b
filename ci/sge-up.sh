#!/usr/bin/env bash
# Start a single-host Son of Grid Engine on this machine, without systemd, for fntree's
# Grid Engine tests.
#
# Installs Debian's gridengine-{common,client,master,exec} when missing (debconf answers
# preseeded), writes a host_aliases file so that the host's name and "localhost" are one
# host, starts sge_qmaster, configures it with `qconf -M*`/`-A*` on files (global config,
# scheduler, exec and submit host, the `smp` parallel environment, the `all.q` queue), then
# starts sge_execd and waits until a job runs. Idempotent: a daemon already running is left
# alone, and an object whose configuration is already right is not touched.
#
# Beside Slurm (ci/slurm-up.sh): Grid Engine listens on 6444 (qmaster) and 6445 (execd),
# Slurm on 6817-6819; Grid Engine uses no cgroups here (its limits are rlimits and its own
# polling), so the two share the machine without touching each other's settings.
set -euo pipefail
TAG=sge-up
LOGS=/var/spool/gridengine/*/messages
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"

started=$(date +%s%N)
HOST=$(hostname)
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
COMMON=$SGE_ROOT/$SGE_CELL/common
QUEUE=all.q
PE=smp
SLOTS=$(($(nproc) * 4))   # a few more slots than cores: packets mostly wait on files
WORK=$(mktemp -d /tmp/sge-up.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# -- packages ------------------------------------------------------------------------------
PACKAGES="gridengine-common gridengine-client gridengine-master gridengine-exec"
missing=0
for cmd in sge_qmaster sge_execd qsub qstat qacct qconf; do
    command -v "$cmd" >/dev/null 2>&1 || [[ -x /usr/sbin/$cmd ]] || missing=1
done
if ((missing)); then
    say "installing $PACKAGES"
    for package in $PACKAGES; do   # the questions postinst asks, answered beforehand
        printf '%s shared/gridengineconfig boolean true\n' "$package"
        printf '%s shared/gridenginecell string default\n' "$package"
        printf '%s shared/gridenginemaster string %s\n' "$package" "$HOST"
    done | debconf-set-selections
    export DEBIAN_FRONTEND=noninteractive
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        apt-get update -q >/dev/null
    fi
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $PACKAGES >/dev/null
fi
[[ -s $COMMON/bootstrap ]] || { say "$COMMON/bootstrap is missing: the packages' init_cluster did not run"; exit 1; }

# /etc/hosts names 127.0.0.1 "localhost" first while the host calls itself $HOST: without
# this alias every client is refused ("client IP resolved to host name localhost").
if [[ $(cat "$COMMON/host_aliases" 2>/dev/null) != "$HOST localhost" ]]; then
    echo "$HOST localhost" >"$COMMON/host_aliases"
    chown sgeadmin:sgeadmin "$COMMON/host_aliases"
fi

# -- qmaster -----------------------------------------------------------------------------------
if ! alive /var/spool/gridengine/qmaster/qmaster.pid sge_qmaster; then
    say "starting sge_qmaster"
    /usr/sbin/sge_qmaster
fi
wait_for 60 "sge_qmaster to answer" qconf -sh

# settings: qconf's listing on stdin as "key value" lines, continuations joined, spaces squeezed.
settings() { sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*/ /; ta' | tr -s ' \t' '  ' | sort; }

# differs FILE: qconf's listing on stdin disagrees with a setting of FILE.
differs() {
    local listing
    listing=$(settings)
    while read -r line; do
        grep -qxF -- "$line" <<<"$listing" || return 0
    done < <(settings <"$1")
    return 1
}

# apply KIND NAME FILE: add object NAME from FILE (`qconf -A<kind>`), or modify it
# (`qconf -M<kind>`) when one of its settings differs from FILE's.
apply() {
    local kind=$1 name=$2 file=$3
    if ! qconf -s"$kind" "$name" >/dev/null 2>&1; then
        qconf -A"$kind" "$file" >/dev/null 2>&1
    elif qconf -s"$kind" "$name" | differs "$file"; then
        qconf -M"$kind" "$file" >/dev/null 2>&1
    fi
}

# Global configuration: root may submit (Debian's min_uid is 1000), load reports every 5 s,
# and accounting written at once, so that qacct knows a job as soon as it ends.
qconf -sconf global | settings >"$WORK/global"
sed -i -e 's/^min_uid .*/min_uid 0/' -e 's/^min_gid .*/min_gid 0/' \
    -e 's/^load_report_time .*/load_report_time 00:00:05/' \
    -e 's/^reporting_params .*/reporting_params accounting=true reporting=false flush_time=00:00:01 joblog=false sharelog=00:00:00 accounting_flush_time=00:00:00/' \
    "$WORK/global"
if qconf -sconf global | differs "$WORK/global"; then
    qconf -Mconf "$WORK/global" >/dev/null 2>&1
fi

# Scheduler: a pass every second, and at once on submit and finish (the default is 15 s).
qconf -ssconf | sed -e 's/^schedule_interval .*/schedule_interval 0:0:1/' \
    -e 's/^flush_submit_sec .*/flush_submit_sec 1/' -e 's/^flush_finish_sec .*/flush_finish_sec 1/' \
    -e 's/^job_load_adjustments .*/job_load_adjustments NONE/' \
    -e 's/^queue_sort_method .*/queue_sort_method seqno/' >"$WORK/sched"
if qconf -ssconf | differs "$WORK/sched"; then
    qconf -Msconf "$WORK/sched" >/dev/null 2>&1
fi

# h_vmem consumable, as at most sites: jobs queue until the memory they ask for is free. Its
# default must not be 0 (a job that asks for none would be killed at once).
qconf -sc | awk '$1 == "h_vmem" {$6 = "YES"; $7 = "1G"} {print}' >"$WORK/complex"
if ! diff -q <(qconf -sc | tr -s ' ') <(tr -s ' ' <"$WORK/complex") >/dev/null; then
    qconf -Mc "$WORK/complex" >/dev/null 2>&1
fi

qconf -sh | grep -qx "$HOST" || qconf -ah "$HOST" >/dev/null 2>&1
qconf -ss 2>/dev/null | grep -qx "$HOST" || qconf -as "$HOST" >/dev/null 2>&1

mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
cat >"$WORK/host" <<EOF
hostname $HOST
load_scaling NONE
complex_values h_vmem=${mem_kb}K
user_lists NONE
xuser_lists NONE
projects NONE
xprojects NONE
usage_scaling NONE
report_variables NONE
EOF
apply e "$HOST" "$WORK/host"

cat >"$WORK/pe" <<EOF
pe_name $PE
slots 9999
user_lists NONE
xuser_lists NONE
start_proc_args NONE
stop_proc_args NONE
allocation_rule \$pe_slots
control_slaves FALSE
job_is_first_task TRUE
urgency_slots min
accounting_summary FALSE
qsort_args NONE
EOF
apply p "$PE" "$WORK/pe"

# The queue: no load thresholds (a busy machine would otherwise put it in alarm and stop
# scheduling), bash started as a login-less shell of the script (unix_behavior honours #!).
cat >"$WORK/queue" <<EOF
qname $QUEUE
hostlist $HOST
seq_no 0
load_thresholds NONE
suspend_thresholds NONE
nsuspend 1
suspend_interval 00:05:00
priority 0
min_cpu_interval 00:05:00
processors UNDEFINED
qtype BATCH INTERACTIVE
ckpt_list NONE
pe_list $PE
rerun FALSE
slots $SLOTS
tmpdir /tmp
shell /bin/bash
prolog NONE
epilog NONE
shell_start_mode unix_behavior
starter_method NONE
suspend_method NONE
resume_method NONE
terminate_method NONE
notify 00:00:60
owner_list NONE
user_lists NONE
xuser_lists NONE
subordinate_list NONE
complex_values NONE
projects NONE
xprojects NONE
calendar NONE
initial_state default
s_rt INFINITY
h_rt INFINITY
s_cpu INFINITY
h_cpu INFINITY
s_fsize INFINITY
h_fsize INFINITY
s_data INFINITY
h_data INFINITY
s_stack INFINITY
h_stack INFINITY
s_core INFINITY
h_core INFINITY
s_rss INFINITY
h_rss INFINITY
s_vmem INFINITY
h_vmem INFINITY
EOF
apply q "$QUEUE" "$WORK/queue"

# -- execd -------------------------------------------------------------------------------------
execd_pid=$(compgen -G '/var/spool/gridengine/execd/*/execd.pid' | head -n 1 || true)
if [[ -z $execd_pid ]] || ! alive "$execd_pid" sge_execd; then
    say "starting sge_execd"
    /usr/sbin/sge_execd
fi
# The queue instance is "au" (alarm, unknown) until the execd has reported its load.
queue_ready() {
    local state
    state=$(qstat -f -q "$QUEUE" | awk -v q="$QUEUE@" 'index($1, q) == 1 {print $6}')
    [[ -n $(qstat -f -q "$QUEUE" | awk -v q="$QUEUE@" 'index($1, q) == 1') ]] &&
        [[ $state != *u* && $state != *a* && $state != *d* && $state != *E* ]]
}
wait_for 60 "queue $QUEUE to come up" queue_ready
qmod -c "$QUEUE" >/dev/null 2>&1 || true   # clear an error state left by an earlier run
printf '#!/bin/bash\ntrue\n' >"$WORK/check.sh"
wait_for 60 "a job to run (qsub -sync y)" \
    timeout 30 qsub -sync y -o /dev/null -e /dev/null -N sge-up-check -l h_vmem=64M,h_rt=60 \
    "$WORK/check.sh"

tenths=$((($(date +%s%N) - started) / 100000000))
say "Grid Engine is up: host $HOST, queue $QUEUE ($SLOTS slots), pe $PE ($((tenths / 10)).$((tenths % 10)) s)"
