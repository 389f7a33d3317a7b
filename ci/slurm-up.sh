#!/usr/bin/env bash
# Start a three-node Slurm on this machine, without systemd, for fntree's Slurm tests.
#
# Installs Debian's slurm-wlm, munge, slurmdbd and mariadb-server when missing, writes
# slurm.conf, cgroup.conf and slurmdbd.conf, and starts munged, mariadbd, slurmdbd, slurmctld
# and one slurmd per node directly, each with a pid file (ci/slurm-down.sh stops them by those
# pids). The nodes n1, n2, n3 all live on this host (Slurm's multiple-slurmd mode): each its
# own slurmd (`slurmd -N n1`), port, spool dir, pid file, log and cgroup, each declaring this
# host's cores and a third of its memory, so that one run's jobs land on different nodes and
# a node can be taken down alone. Accounting goes to slurmdbd + MariaDB (so sacct works),
# memory is enforced by cgroups (a job over its --mem ends OUT_OF_MEMORY), and the partition
# is FORCE:8 oversubscribed with batch_sched_delay=0 so that small jobs start in about a
# second (the tests do not rely on it). Idempotent: daemons already running the same
# configuration are left alone; a different node set (such as the single node of earlier
# versions of this script) stops the Slurm daemons and starts them afresh. Ends when a job
# has run on every node. Facts behind each setting: shared/notes/slurm.md.
set -euo pipefail
TAG=slurm-up
LOGS=/var/log/slurm
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"

started=$(date +%s%N)
HOST=$(hostname -s)
NODES=(n1 n2 n3)
FIRST_PORT=6831   # n1 listens on 6831, n2 on 6832, ...
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

install -d -m 0755 "$CONF" "$RUN" "$LOG" "$STATE/slurmctld"
for node in "${NODES[@]}"; do install -d -m 0755 "$STATE/slurmd/$node"; done

# -- configuration ---------------------------------------------------------------------------
hardware=$(slurmd -C | head -n 1)   # NodeName=<name> CPUs=.. Boards=.. ... RealMemory=..
[[ $hardware == NodeName=* ]] || { say "slurmd -C printed: $hardware"; exit 1; }
memory=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hardware")
cores=$(sed -e 's/^NodeName=[^ ]* //' -e 's/ *RealMemory=[0-9]*//' <<<"$hardware")
node_lines=""
for i in "${!NODES[@]}"; do
    node_lines+="NodeName=${NODES[i]} NodeHostname=$HOST NodeAddr=127.0.0.1 \
Port=$((FIRST_PORT + i)) $cores RealMemory=$((memory / ${#NODES[@]})) State=UNKNOWN
"
done
node_list=$(IFS=,; echo "${NODES[*]}")

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
# Written by fntree's ci/slurm-up.sh: three nodes on one host, accounting, memory enforcement.
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd/%n
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd-%n.log
SlurmdParameters=config_overrides
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
${node_lines%$'\n'}
PartitionName=$PARTITION Nodes=$node_list Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
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

# A changed slurm.conf may change the node set, which slurmctld only reads when it starts:
# stop the controller and every slurmd (the single node's pid file included), start afresh.
if ((changed)); then
    say "configuration changed: restarting slurmctld and the slurmds"
    stop "$RUN/slurmd.pid" slurmd
    for node in "${NODES[@]}"; do stop "$RUN/slurmd-$node.pid" slurmd; done
    stop "$RUN/slurmctld.pid" slurmctld
fi
if ! alive "$RUN/slurmctld.pid" slurmctld; then
    say "starting slurmctld"
    slurmctld
fi
wait_for 30 slurmctld scontrol ping

for node in "${NODES[@]}"; do
    if ! alive "$RUN/slurmd-$node.pid" slurmd; then
        say "starting slurmd for node $node"
        slurmd -N "$node"
    fi
done
# sinfo can show a stale "idle" before a slurmd has registered: a real job on each node is
# the test. A node left down or drained (by a test, say) is resumed first.
scontrol update nodename="$node_list" state=resume >/dev/null 2>&1 || true
for node in "${NODES[@]}"; do
    wait_for 60 "a job to run on $node (srun -w $node true)" \
        timeout 20 srun -w "$node" --mem=64 --time=1 true
done

tenths=$((($(date +%s%N) - started) / 100000000))
say "Slurm is up: nodes $node_list on $HOST, partition $PARTITION, accounting on" \
    "($((tenths / 10)).$((tenths % 10)) s)"
