#!/usr/bin/env bash
# Stop the Grid Engine that ci/sge-up.sh started, by the pids in its pid files: sge_execd,
# then sge_qmaster. Jobs still running are killed with the execd. Idempotent; the packages
# and the configuration stay (ci/sge-up.sh starts it again in a few seconds).
set -uo pipefail
TAG=sge-down
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"

for pidfile in /var/spool/gridengine/execd/*/execd.pid; do
    [[ -e $pidfile ]] && stop "$pidfile" sge_execd
done
stop /var/spool/gridengine/qmaster/qmaster.pid sge_qmaster
