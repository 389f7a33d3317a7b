# Shell functions shared by ci/slurm-up.sh, ci/slurm-down.sh, ci/sge-up.sh and ci/sge-down.sh.
# Set TAG (the prefix of messages) and LOGS (where to look when a wait gives up) first.

say() { printf '[%s] %s\n' "$TAG" "$*"; }

# alive PIDFILE NAME: the process recorded in PIDFILE is running and is NAME.
alive() {
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/comm ]] && [[ $(</proc/"$pid"/comm) == "$2" ]]
}

# wait_for SECONDS WHAT COMMAND...: retry COMMAND every 0.2 s until it succeeds.
wait_for() {
    local seconds=$1 what=$2 deadline
    shift 2
    deadline=$(($(date +%s) + seconds))
    until "$@" >/dev/null 2>&1; do
        if (($(date +%s) >= deadline)); then
            say "gave up waiting for $what after ${seconds}s; see ${LOGS:-the logs}"
            return 1
        fi
        sleep 0.2
    done
}

# stop PIDFILE NAME: SIGTERM the process recorded in PIDFILE if it is NAME; SIGKILL after 15 s.
stop() {
    local pid
    [[ -s $1 ]] || return 0
    if alive "$1" "$2"; then
        pid=$(<"$1")
        say "stopping $2 (pid $pid)"
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 150); do
            [[ -d /proc/$pid ]] || break
            sleep 0.1
        done
        if [[ -d /proc/$pid ]]; then
            say "$2 (pid $pid) did not stop: SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        fi
    fi
    rm -f "$1"
}
