#!/usr/bin/env bash
# Stop the Slurm that ci/slurm-up.sh started, by the pids in its pid files: every node's
# slurmd (and the single slurmd of earlier versions), slurmctld, slurmdbd, mariadbd, munged,
# in that order. Idempotent.
set -uo pipefail
TAG=slurm-down
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"

RUN=/run/slurm

stop "$RUN/slurmd.pid" slurmd
for pidfile in "$RUN"/slurmd-*.pid; do
    [[ -e $pidfile ]] && stop "$pidfile" slurmd
done
stop "$RUN/slurmctld.pid" slurmctld
stop "$RUN/slurmdbd.pid" slurmdbd
stop /run/mysqld/mysqld.pid mariadbd
stop /run/munge/munged.pid munged
