#!/usr/bin/env bash
# Stop the single-node Slurm that ci/slurm-up.sh started, by the pids in its pid files:
# slurmd, slurmctld, slurmdbd, mariadbd, munged, in that order. Idempotent.
set -uo pipefail

RUN=/run/slurm

# stop PIDFILE NAME: SIGTERM the process recorded in PIDFILE if it is NAME; SIGKILL after 15 s.
stop() {
    local pid
    [[ -s $1 ]] || return 0
    pid=$(<"$1")
    if [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/comm ]] && [[ $(</proc/"$pid"/comm) == "$2" ]]; then
        printf '[slurm-down] stopping %s (pid %s)\n' "$2" "$pid"
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 150); do
            [[ -d /proc/$pid ]] || break
            sleep 0.1
        done
        if [[ -d /proc/$pid ]]; then
            printf '[slurm-down] %s (pid %s) did not stop: SIGKILL\n' "$2" "$pid"
            kill -KILL "$pid" 2>/dev/null
        fi
    fi
    rm -f "$1"
}

stop "$RUN/slurmd.pid" slurmd
stop "$RUN/slurmctld.pid" slurmctld
stop "$RUN/slurmdbd.pid" slurmdbd
stop /run/mysqld/mysqld.pid mariadbd
stop /run/munge/munged.pid munged
