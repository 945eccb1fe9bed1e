#!/usr/bin/env bash
# A single-node SLURM on this Debian/Ubuntu machine, for testing the sweep's SLURM path
# (tests/test_slurm.py) — not for production.
#
#   sudo workflow/profiles/slurm/local-cluster.sh start [--install]   # munged, slurmctld, slurmd; waits for 'idle'
#   sudo workflow/profiles/slurm/local-cluster.sh start --accounting  # also MariaDB + slurmdbd: sacct works
#   sudo workflow/profiles/slurm/local-cluster.sh stop                # cancels its jobs, stops what it started
#   workflow/profiles/slurm/local-cluster.sh status
#   sudo workflow/profiles/slurm/local-cluster.sh install [--accounting]   # only apt-get install the packages
#
# Why it looks like this:
# - The config goes to /etc/slurm/slurm.conf: the executor plugin's job-step wrapper drops every
#   SLURM_* variable (SLURM_CONF included) before its inner srun, so a config elsewhere is not found.
#   The script refuses to overwrite a slurm.conf it did not write, and restores nothing else.
# - No cgroups (ProctrackType=proctrack/linuxproc, TaskPlugin=task/none): works in containers.
#   Daemons talk over 127.0.0.1 (NodeAddr), so the host name need not resolve. CR_CPU: CPUs are
#   consumed, memory is only checked against the node's (a request above it is rejected at sbatch).
# - By default no accounting (no slurmdbd): `sacct` answers "accounting storage is disabled", so the
#   sweep's profile queries job states with squeue; MinJobAge=300 keeps finished jobs visible to it.
#   --accounting adds a private MariaDB (datadir in $STATE_DIR, 127.0.0.1:3307) and slurmdbd
#   (packages slurmdbd mariadb-server, installed by --install --accounting).
# - It installs nothing unless --install is given (apt-get install slurm-wlm munge), so it is safe
#   on a workstation. It stops only the daemons it started (PIDs recorded in $STATE_DIR), and
#   leaves a munged that was already running alone.
#
# Environment: ML2BENCH_SLURM_STATE (default /tmp/ml2bench-slurm): pid files, logs, spool.
# Exit status: 0 ok; 2 usage; 3 SLURM/munge not installed; 4 a foreign SLURM config or daemon is
# in the way; 5 the node did not become idle in time (daemons are stopped again).
set -euo pipefail

CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
MARK="# written by ml2bench local-cluster.sh"
STATE_DIR=${ML2BENCH_SLURM_STATE:-/tmp/ml2bench-slurm}
WAIT_S=${ML2BENCH_SLURM_WAIT_S:-60}

log() { echo "local-cluster: $*" >&2; }

need_root() {
    if [[ $(id -u) -ne 0 ]]; then
        log "must run as root (munged, slurmctld and slurmd are started by hand)"; exit 2
    fi
}

PACKAGES=(slurm-wlm munge)
ACCOUNTING=0
DB_PORT=3307

install_packages() {
    # Bounded: update <= 90 s, install <= 180 s, at most 3 attempts (a slow mirror must not hang CI: <= 14 min).
    need_root
    installed && return 0
    local i
    for i in 1 2 3; do
        if timeout 90 apt-get update -q >/dev/null \
           && DEBIAN_FRONTEND=noninteractive timeout 180 apt-get install -y -q --no-install-recommends \
                "${PACKAGES[@]}" >/dev/null; then
            return 0
        fi
        log "apt-get failed (attempt $i of 3)"; sleep $((5 * i))
    done
    return 1
}

installed() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sinfo >/dev/null || return 1
    [[ $ACCOUNTING -eq 0 ]] || { command -v slurmdbd >/dev/null && command -v mariadbd >/dev/null; }
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_conf() {
    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc)
    # 90 % of the memory, so that SLURM accepts the node (RealMemory must not exceed what slurmd sees).
    mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    mkdir -p /etc/slurm "$STATE_DIR/ctld" "$STATE_DIR/d"
    cat >"$CONF" <<EOF
$MARK — removed by 'local-cluster.sh stop'
ClusterName=ml2bench
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/$([[ $ACCOUNTING -eq 1 ]] && echo slurmdbd || echo none)
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/d
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/slurmctld.log
SlurmdLogFile=$STATE_DIR/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_accounting() {  # a private MariaDB (datadir in $STATE_DIR), then slurmdbd; both stopped by 'stop'
    local i
    mariadb-install-db --user=root --datadir="$STATE_DIR/mysql" --auth-root-authentication-method=socket \
        --skip-test-db >"$STATE_DIR/mariadb-install.log" 2>&1
    mariadbd --user=root --datadir="$STATE_DIR/mysql" --socket="$STATE_DIR/mysql.sock" --port=$DB_PORT \
        --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$STATE_DIR/mariadbd.pid" \
        --log-error="$STATE_DIR/mariadbd.log" >/dev/null 2>&1 &
    for i in $(seq 60); do mariadb -S "$STATE_DIR/mysql.sock" -e "select 1" >/dev/null 2>&1 && break; sleep 0.5; done
    mariadb -S "$STATE_DIR/mysql.sock" -e "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'ml2bench';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
    printf '%s\n' "$MARK — removed by 'local-cluster.sh stop'" DbdHost=localhost SlurmUser=root AuthType=auth/munge \
        StorageType=accounting_storage/mysql StorageHost=127.0.0.1 StoragePort=$DB_PORT StorageUser=slurm \
        StoragePass=ml2bench StorageLoc=slurm_acct_db "PidFile=$STATE_DIR/slurmdbd.pid" \
        "LogFile=$STATE_DIR/slurmdbd.log" >"$DBD_CONF"
    chmod 600 "$DBD_CONF"
    slurmdbd
    for i in $(seq 60); do sacctmgr -i add cluster ml2bench >/dev/null 2>&1 && return 0; sleep 0.5; done
    log "slurmdbd did not answer; see $STATE_DIR/slurmdbd.log"; return 1
}

ours() { [[ ! -f $1 ]] || head -1 "$1" | grep -q "^$MARK"; }   # absent, or written by this script

start() {
    local install=0
    for arg in "$@"; do
        case $arg in
            --install) install=1 ;;
            --accounting) ACCOUNTING=1; PACKAGES+=(slurmdbd mariadb-server) ;;
            *) log "unknown option '$arg' (allowed: --install, --accounting)"; exit 2 ;;
        esac
    done
    need_root
    if ! installed; then
        if [[ $install -eq 1 ]]; then
            install_packages || { log "could not install ${PACKAGES[*]}"; exit 3; }
        else
            log "${PACKAGES[*]} not all installed (add --install to apt-get install them)"; exit 3
        fi
    fi
    if ! ours "$CONF" || ! ours "$DBD_CONF"; then
        log "$CONF or $DBD_CONF exists and was not written by this script: refusing to touch a real cluster"; exit 4
    fi
    if pid_alive "$STATE_DIR/slurmctld.pid" || pid_alive "$STATE_DIR/slurmd.pid"; then
        log "already running (state in $STATE_DIR); 'stop' first"; exit 4
    fi
    if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || pgrep -x slurmdbd >/dev/null; then
        log "a slurmctld/slurmd/slurmdbd not started by this script is running: refusing to start a second one"; exit 4
    fi
    rm -rf "$STATE_DIR"; mkdir -p "$STATE_DIR"
    write_conf

    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    if munge -n </dev/null >/dev/null 2>&1; then
        log "munged already running: using it (it will not be stopped)"
    else
        mkdir -p "$STATE_DIR/munge" && chown munge:munge "$STATE_DIR/munge"   # munged writes its pid as user munge
        runuser -u munge -- /usr/sbin/munged --pid-file="$STATE_DIR/munge/munged.pid"
        echo started >"$STATE_DIR/munged.ours"
    fi
    if [[ $ACCOUNTING -eq 1 ]]; then start_accounting || { stop; exit 5; }; fi
    slurmctld -c        # -c: clean start, no job state from an earlier run
    slurmd
    local t0=$SECONDS state=""
    while (( SECONDS - t0 < WAIT_S )); do
        state=$(sinfo -h -N -o %t 2>/dev/null | head -1 || true)
        if [[ $state == idle ]]; then
            log "node $(hostname -s) idle after $((SECONDS - t0)) s ($(sinfo -V), accounting $([[ $ACCOUNTING -eq 1 ]] && echo slurmdbd || echo none)); state in $STATE_DIR"
            return 0
        fi
        sleep 1
    done
    log "node not idle after $WAIT_S s (state '${state}'); see $STATE_DIR/*.log"
    stop
    exit 5
}

stop_pidfile() {  # name pidfile: TERM, wait up to 15 s, then KILL
    local name=$1 file=$2 pid i
    [[ -f $file ]] || return 0
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        if kill -0 "$pid" 2>/dev/null; then log "$name ($pid) ignored TERM: KILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$file"
}

stop() {
    need_root
    if pid_alive "$STATE_DIR/slurmctld.pid"; then
        # Jobs of this private cluster only; their slurmstepd would otherwise outlive slurmd.
        timeout 20 scancel --full --quiet --state=PENDING 2>/dev/null || true
        timeout 20 squeue -h -o %i 2>/dev/null | xargs -r timeout 20 scancel --full 2>/dev/null || true
        sleep 1
    fi
    stop_pidfile slurmd "$STATE_DIR/slurmd.pid"
    stop_pidfile slurmctld "$STATE_DIR/slurmctld.pid"
    stop_pidfile slurmdbd "$STATE_DIR/slurmdbd.pid"
    stop_pidfile mariadbd "$STATE_DIR/mariadbd.pid"
    if [[ -f $STATE_DIR/munged.ours ]]; then
        stop_pidfile munged "$STATE_DIR/munge/munged.pid"
        rm -f "$STATE_DIR/munged.ours"
    fi
    local f
    for f in "$CONF" "$DBD_CONF"; do
        if [[ -f $f ]] && ours "$f"; then rm -f "$f"; fi
    done
    log "stopped"
}

status() {
    if pid_alive "$STATE_DIR/slurmctld.pid"; then
        sinfo -N -o "%N %t %c %m"; exit 0
    fi
    log "not running"; exit 1
}

case ${1:-} in
    start) shift; start "$@" ;;
    stop) stop ;;
    install) if [[ ${2:-} == --accounting ]]; then ACCOUNTING=1; PACKAGES+=(slurmdbd mariadb-server); fi
             install_packages || { log "could not install ${PACKAGES[*]}"; exit 3; } ;;
    status) status ;;
    *) echo "usage: $0 start [--install] [--accounting] | stop | status | install [--accounting]" >&2; exit 2 ;;
esac
