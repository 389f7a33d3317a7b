#!/usr/bin/env bash
# Start a single-node Slurm on this machine, without systemd, for fntree's Slurm tests.
#
# Installs Debian's slurm-wlm, munge, slurmdbd and mariadb-server when missing, writes
# slurm.conf, cgroup.conf and slurmdbd.conf for one node named $(hostname -s), and starts
# munged, mariadbd, slurmdbd, slurmctld and slurmd directly, each with a pid file
# (ci/slurm-down.sh stops them by those pids). Accounting goes to slurmdbd + MariaDB (so
# sacct works), memory is enforced by cgroups (a job over its --mem ends OUT_OF_MEMORY),
# and the partition is FORCE:8 oversubscribed with batch_sched_delay=0 so that small jobs
# start in about a second. Idempotent: a daemon already running is left alone. Ends when
# `srun true` succeeds. Facts behind each setting: shared/notes/slurm.md.
set -euo pipefail
TAG=slurm-up
LOGS=/var/log/slurm
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"

started=$(date +%s%N)
NODE=$(hostname -s)
CLUSTER=fntree
PARTITION=main
CONF=/etc/slurm
RUN=/run/slurm
LOG=/var/log/slurm
STATE=/var/lib/slurm
DB_NAME=slurm_acct_db
DB_USER=slurm
DB_PASS=fntree-ci-local   # MariaDB listens on 127.0.0.1 and its socket only

# install_if_changed PATH MODE: replace PATH with stdin when different; returns 0 if replaced.
install_if_changed() {
    local tmp
    tmp=$(mktemp "$1.XXXXXX")
    cat >"$tmp"
    chmod "$2" "$tmp"
    if [[ -f $1 ]] && cmp -s "$tmp" "$1"; then
        rm -f "$tmp"
        return 1
    fi
    mv -f "$tmp" "$1"
}

# -- packages ------------------------------------------------------------------------------
missing=0
for cmd in slurmctld slurmd slurmdbd sbatch sacct munged mariadbd; do
    command -v "$cmd" >/dev/null 2>&1 || missing=1
done
if ((missing)); then
    say "installing slurm-wlm, munge, slurmdbd, mariadb-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q slurm-wlm munge slurmdbd mariadb-server >/dev/null
fi

install -d -m 0755 "$CONF" "$RUN" "$LOG" "$STATE/slurmctld" "$STATE/slurmd"

# -- configuration ---------------------------------------------------------------------------
node_line=$(slurmd -C | head -n 1)   # NodeName=<name> CPUs=.. Boards=.. ... RealMemory=..
[[ $node_line == NodeName=* ]] || { say "slurmd -C printed: $node_line"; exit 1; }

if [[ -e /sys/fs/cgroup/memory/memory.limit_in_bytes ]]; then
    # cgroup v1: a job over its --mem is killed by the kernel and ends OUT_OF_MEMORY.
    enforcement="ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup,task/affinity
JobAcctGatherType=jobacct_gather/cgroup"
else
    # No v1 memory cgroup: slurmd's poller kills a job over its --mem (state FAILED, 0:9).
    say "no cgroup v1 memory controller: memory enforced by polling (OverMemoryKill)"
    enforcement="ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherParams=OverMemoryKill
JobAcctGatherFrequency=1"
fi

changed=0
install_if_changed "$CONF/slurm.conf" 0644 <<EOF && changed=1 || true
# Written by fntree's ci/slurm-up.sh: one node, accounting, memory enforcement.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
$enforcement
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
EOF

install_if_changed "$CONF/cgroup.conf" 0644 <<EOF && changed=1 || true
CgroupPlugin=cgroup/v1
CgroupAutomount=yes
ConstrainCores=yes
ConstrainRAMSpace=yes
EOF

install_if_changed "$CONF/slurmdbd.conf" 0600 <<EOF || true
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF

# -- munge -------------------------------------------------------------------------------------
install -d -o munge -g munge -m 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
fi
if ! alive /run/munge/munged.pid munged; then
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
fi
wait_for 10 munged sh -c 'munge -n | unmunge'

# -- MariaDB (accounting storage) ----------------------------------------------------------
install -d -o mysql -g root -m 0755 /run/mysqld
if [[ ! -d /var/lib/mysql/mysql ]]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
fi
if ! alive /run/mysqld/mysqld.pid mariadbd; then
    say "starting mariadbd"
    setsid /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 \
        --pid-file=/run/mysqld/mysqld.pid --socket=/run/mysqld/mysqld.sock \
        --innodb-lock-wait-timeout=900 --log-error="$LOG/mariadb.log" \
        </dev/null >/dev/null 2>&1 &
fi
wait_for 30 mariadbd mariadb-admin --socket=/run/mysqld/mysqld.sock ping
wait_for 10 "mariadbd's pid file" test -s /run/mysqld/mysqld.pid
mariadb --socket=/run/mysqld/mysqld.sock <<EOF
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
EOF

# -- slurmdbd, slurmctld, slurmd -----------------------------------------------------------
if ! alive "$RUN/slurmdbd.pid" slurmdbd; then
    say "starting slurmdbd"
    slurmdbd
fi
wait_for 30 slurmdbd sacctmgr -n -P show cluster
if [[ -z $(sacctmgr -n -P show cluster "$CLUSTER" format=cluster) ]]; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi

if ! alive "$RUN/slurmctld.pid" slurmctld; then
    say "starting slurmctld"
    slurmctld
elif ((changed)); then
    say "configuration changed: scontrol reconfigure"
    scontrol reconfigure
fi
wait_for 30 slurmctld scontrol ping

if ! alive "$RUN/slurmd.pid" slurmd; then
    say "starting slurmd"
    slurmd
fi
# sinfo can show a stale "idle" before slurmd has registered: a real job is the test.
wait_for 60 "a job to run (srun true)" timeout 20 srun --mem=64 --time=1 true
scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true

tenths=$((($(date +%s%N) - started) / 100000000))
say "Slurm is up: node $NODE, partition $PARTITION, accounting on ($((tenths / 10)).$((tenths % 10)) s)"
