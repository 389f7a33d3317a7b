#!/usr/bin/env bash
# Stop the Grid Engine that ci/sge-up.sh started, by the pids in its pid files: sge_execd,
# then sge_qmaster. Jobs still running are killed with the execd. Idempotent; the packages
# and the configuration stay (ci/sge-up.sh starts it again in a few seconds).
set -uo pipefail

# stop PIDFILE NAME: SIGTERM the process recorded in PIDFILE if it is NAME; SIGKILL after 15 s.
stop() {
    local pid
    [[ -s $1 ]] || return 0
    pid=$(<"$1")
    if [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/comm ]] && [[ $(</proc/"$pid"/comm) == "$2" ]]; then
        printf '[sge-down] stopping %s (pid %s)\n' "$2" "$pid"
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 150); do
            [[ -d /proc/$pid ]] || break
            sleep 0.1
        done
        if [[ -d /proc/$pid ]]; then
            printf '[sge-down] %s (pid %s) did not stop: SIGKILL\n' "$2" "$pid"
            kill -KILL "$pid" 2>/dev/null
        fi
    fi
    rm -f "$1"
}

for pidfile in /var/spool/gridengine/execd/*/execd.pid; do
    [[ -e $pidfile ]] && stop "$pidfile" sge_execd
done
stop /var/spool/gridengine/qmaster/qmaster.pid sge_qmaster
