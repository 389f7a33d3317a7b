#!/usr/bin/env bash
# Stop the single-node Slurm that ci/slurm-up.sh started, by the pids in its pid files:
# slurmd, slurmctld, slurmdbd, mariadbd, munged, in that order. Idempotent.
set -uo pipefail
TAG=slurm-down
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"

RUN=/run/slurm

stop "$RUN/slurmd.pid" slurmd
stop "$RUN/slurmctld.pid" slurmctld
stop "$RUN/slurmdbd.pid" slurmdbd
stop /run/mysqld/mysqld.pid mariadbd
stop /run/munge/munged.pid munged
