#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine (Debian's slurm-wlm and munge), for running the
# pipeline through profiles/slurm without a cluster. Needs root (slurmd runs jobs as their user).
#
#   tools/slurm/cluster.sh install   # apt-get install slurm-wlm munge (root; no-op when installed)
#   tools/slurm/cluster.sh start     # configure and start munged, slurmctld, slurmd; prints SLURM_CONF
#   tools/slurm/cluster.sh status    # daemons, node and queue (exit 0 when the cluster is up)
#   tools/slurm/cluster.sh stop      # cancel jobs, stop the daemons, delete the folder
#
# Everything (slurm.conf, munge key and socket, state, spool, pid and log files) lives in one
# temporary folder, $FLOWTHEORY_SLURM_DIR (default /tmp/flowtheory-slurm); nothing is written to
# /etc/slurm or /etc/munge. Clients find the cluster through SLURM_CONF=<folder>/slurm.conf:
#
#   eval "$(tools/slurm/cluster.sh start)"     # exports SLURM_CONF, and PATH with an srun wrapper
#   sinfo; snakemake --profile profiles/slurm ...   (see docs/cluster.md)
#   tools/slurm/cluster.sh stop
#
# Why not /etc/slurm: snakemake-executor-plugin-slurm runs `scontrol show config` whenever
# Snakemake starts; with a system-wide slurm.conf but no controller running that takes ~9 s and
# slows every later `snakemake` call on the machine. Without one it fails at once.
#
# Settings (environment): FLOWTHEORY_SLURM_DIR (folder), FLOWTHEORY_SLURM_CPUS (default: 2, at most
# the machine's), FLOWTHEORY_SLURM_PARTITION (default: debug). The node's memory is read from the
# machine (slurmd -C). Ports are picked free at start, so two clusters on one machine do not clash.
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATE="$HERE/slurm.conf.in"
DIR="${FLOWTHEORY_SLURM_DIR:-/tmp/flowtheory-slurm}"
CONF="$DIR/slurm.conf"
PACKAGES=(slurm-wlm munge)
NODE=ftnode
PARTITION="${FLOWTHEORY_SLURM_PARTITION:-debug}"
START_TIMEOUT=60
MARKER=.flowtheory-slurm   # only folders holding this file are ever deleted

die() { echo "cluster.sh: $*" >&2; exit 1; }
log() { echo "cluster.sh: $*" >&2; }

have_binaries() {
  local b
  for b in munged mungekey slurmctld slurmd sbatch squeue sinfo scontrol scancel; do
    command -v "$b" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$b" >/dev/null 2>&1 || return 1
  done
}

cmd_install() {
  export PATH="$PATH:/usr/sbin:/sbin"
  if have_binaries; then
    log "slurm-wlm and munge already installed"
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "installing ${PACKAGES[*]} needs root"
  command -v apt-get >/dev/null || die "no apt-get: install ${PACKAGES[*]} (Debian/Ubuntu packages) by hand"
  log "apt-get install ${PACKAGES[*]}"
  apt-get update -qq
  # --no-install-recommends: the daemons only, not every optional plugin (HDF5, InfluxDB, ...)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
  have_binaries || die "installed ${PACKAGES[*]}, but some binaries are still missing"
}

pid_alive() {  # pid_alive FILE: the pid in FILE names a running process
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

node_memory_mb() {  # what slurmd itself detects (RealMemory), less any cgroup limit on this container
  local mem cg
  mem=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  [ -n "$mem" ] || mem=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
  if [ -r /sys/fs/cgroup/memory.max ] && cg=$(cat /sys/fs/cgroup/memory.max) && [ "$cg" != max ]; then
    cg=$((cg / 1048576))
    [ "$cg" -lt "$mem" ] && mem=$cg
  fi
  echo "$mem"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.5 s
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "timed out waiting for $what; logs in $DIR/log and $DIR/munge:"
      tail -n 20 "$DIR"/log/*.log "$DIR"/munge/munged.log 2>/dev/null >&2 || true
      return 1
    fi
    sleep 0.5
  done
}

node_idle() { sinfo -h -n "$NODE" -o %T | grep -qx idle; }

cmd_start() {
  export PATH="$PATH:/usr/sbin:/sbin"
  [ "$(id -u)" = 0 ] || die "starting slurmctld and slurmd needs root"
  have_binaries || die "slurm-wlm or munge is not installed (run: $0 install)"
  if pid_alive "$DIR/run/slurmctld.pid" || pid_alive "$DIR/munge/munged.pid"; then
    die "a cluster is already running in $DIR (stop it first: $0 stop)"
  fi
  case $DIR in /?*) ;; *) die "FLOWTHEORY_SLURM_DIR must be an absolute path: $DIR" ;; esac
  if [ -d "$DIR" ] && [ -n "$(ls -A "$DIR")" ]; then
    [ -e "$DIR/$MARKER" ] || die "$DIR exists and is not a cluster folder of this script; choose another"
    rm -rf "$DIR"
  fi
  mkdir -p "$DIR"/{state,spool,run,log,munge}
  : > "$DIR/$MARKER"
  # whatever goes wrong from here on, stop what was started (the logs were shown by wait_for)
  trap 'status=$?; if [ "$status" != 0 ]; then log "start failed; stopping"; cmd_stop; fi; exit "$status"' EXIT
  chmod 755 "$DIR"   # the munge user must reach its folder

  local host cpus ncpu mem
  host=$(hostname -s)
  # the CPUs this process may use: GNU nproc also obeys OMP_NUM_THREADS and OMP_THREAD_LIMIT, which
  # `make` and the tests set to 1 for torch; with them a 2-core machine got a 1-CPU node (half speed)
  ncpu=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
  cpus=${FLOWTHEORY_SLURM_CPUS:-2}
  [[ $cpus =~ ^[1-9][0-9]*$ ]] || die "FLOWTHEORY_SLURM_CPUS must be a positive number: $cpus"
  [ "$cpus" -gt "$ncpu" ] && cpus=$ncpu
  mem=$(node_memory_mb)
  sed -e "s|@DIR@|$DIR|g" -e "s|@HOST@|$host|g" -e "s|@NODE@|$NODE|g" \
      -e "s|@CPUS@|$cpus|g" -e "s|@MEM_MB@|$mem|g" -e "s|@PARTITION@|$PARTITION|g" \
      -e "s|@CTLD_PORT@|$(free_port)|g" -e "s|@SLURMD_PORT@|$(free_port)|g" \
      "$TEMPLATE" > "$CONF"
  : > "$DIR/plugstack.conf"
  export SLURM_CONF="$CONF"
  # Inside a job, snakemake-executor-plugin-slurm-jobstep starts the rule with `srun`, after
  # removing every SLURM_* variable (SLURM_CONF too) from srun's environment; on a real cluster
  # srun then finds /etc/slurm/slurm.conf. Here it finds this wrapper first on the job's PATH.
  mkdir -p "$DIR/bin"
  printf '#!/bin/sh\n# srun with this cluster'"'"'s slurm.conf (see cluster.sh start)\nSLURM_CONF=%s exec %s "$@"\n' \
    "$CONF" "$(PATH=/usr/local/bin:/usr/bin:/bin command -v srun)" > "$DIR/bin/srun"
  chmod 755 "$DIR/bin/srun"

  # munged as the munge user, with its own key and socket (no system munged needed)
  chown munge:munge "$DIR/munge"
  chmod 755 "$DIR/munge"   # munged wants its socket folder reachable by all, writable by none
  runuser -u munge -- mungekey --create --keyfile="$DIR/munge/munge.key"
  runuser -u munge -- munged --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket.2" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed"
  wait_for 15 munged pid_alive "$DIR/munge/munged.pid"

  slurmctld     # daemonizes; reads SLURM_CONF
  wait_for "$START_TIMEOUT" slurmctld scontrol ping
  slurmd -N "$NODE"
  if ! wait_for "$START_TIMEOUT" "node $NODE to become idle" node_idle; then
    sinfo -N -l >&2 || true
    die "the cluster did not come up"
  fi
  trap - EXIT
  log "up: node $NODE, $cpus CPUs, ${mem} MB, partition $PARTITION; folder $DIR"
  echo "export SLURM_CONF=$CONF PATH=$DIR/bin:\$PATH"
}

kill_pidfile() {  # kill_pidfile FILE NAME: TERM, wait up to 10 s, then KILL
  local pid i
  [ -s "$1" ] || return 0
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid" 2>/dev/null || true
  for i in $(seq 40); do
    kill -0 "$pid" 2>/dev/null || { log "stopped $2 ($pid)"; return 0; }
    sleep 0.25
  done
  kill -9 "$pid" 2>/dev/null || true
  log "killed $2 ($pid)"
}

cmd_stop() {
  export PATH="$PATH:/usr/sbin:/sbin"
  if [ ! -e "$CONF" ] && [ ! -d "$DIR" ]; then
    log "no cluster in $DIR"
    return 0
  fi
  export SLURM_CONF="$CONF"
  if pid_alive "$DIR/run/slurmctld.pid" && timeout 10 scontrol ping >/dev/null 2>&1; then
    # cancel what is still queued or running, so slurmd reaps its job steps before it goes
    if [ -n "$(timeout 10 squeue -h -t PD,R,CG -o %i 2>/dev/null)" ]; then
      timeout 10 scancel --full --partition="$PARTITION" 2>/dev/null || true
      local deadline=$((SECONDS + 30))
      while [ -n "$(timeout 10 squeue -h -t PD,R,CG -o %i 2>/dev/null)" ] && [ "$SECONDS" -lt "$deadline" ]; do
        sleep 0.5
      done
    fi
  fi
  kill_pidfile "$DIR/run/slurmd.pid" slurmd
  kill_pidfile "$DIR/run/slurmctld.pid" slurmctld
  kill_pidfile "$DIR/munge/munged.pid" munged
  if [ -e "$DIR/$MARKER" ]; then
    rm -rf "$DIR"
    log "removed $DIR"
  fi
}

cmd_status() {
  export PATH="$PATH:/usr/sbin:/sbin"
  local ok=0 name file
  for name in munged slurmctld slurmd; do
    case $name in
      munged) file="$DIR/munge/munged.pid" ;;
      *) file="$DIR/run/$name.pid" ;;
    esac
    if pid_alive "$file"; then echo "$name: running (pid $(cat "$file"))"; else echo "$name: not running"; ok=1; fi
  done
  if [ "$ok" = 0 ]; then
    export SLURM_CONF="$CONF"
    echo "SLURM_CONF=$CONF"
    sinfo -N -o "%N %P %T %c %m" || ok=1
    squeue -o "%i %j %T %M %R" || ok=1
  fi
  return "$ok"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 {install|start|stop|status}   (folder: \$FLOWTHEORY_SLURM_DIR, default /tmp/flowtheory-slurm)" >&2; exit 2 ;;
esac
