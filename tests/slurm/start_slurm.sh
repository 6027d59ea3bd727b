#!/usr/bin/env bash
# Start a real single-node SLURM (slurmctld, slurmd, slurmdbd over MariaDB for sacct, munge) with one
# fake GPU generic resource, for the test that runs the DAG through profiles/slurm.
#
#   bash tests/slurm/start_slurm.sh [STATE_DIR]     # default /tmp/distill-slurm
#   bash tests/slurm/stop_slurm.sh [STATE_DIR]      # stops what this script started, by pid files
#
# Installs Debian's packages when they are missing (root only; ~25 s). There is no systemd in these
# containers, so every daemon is started by hand and its pid recorded in STATE_DIR/run/<name>.pid;
# state, spool and logs live in STATE_DIR. The configuration goes to /etc/slurm, where every SLURM
# command finds it (SLURM_CONF does not reach the srun that Snakemake's job step runs inside a job),
# marked as ours; a configuration without the mark (a real cluster's) is never overwritten.
# The node declares `Gres=gpu:1` with `File=/dev/null`: jobs asking --gpus=1 schedule and see
# CUDA_VISIBLE_DEVICES=0, while torch finds no CUDA and trains on the CPU. Exit 3: SLURM unavailable.
set -euo pipefail
STATE=${1:-/tmp/distill-slurm}
HERE=$(cd "$(dirname "$0")" && pwd)
NODE=$(hostname -s)
PACKAGES=(slurmctld slurmd slurmdbd slurm-client munge mariadb-server)
fail() { echo "start_slurm: $*" >&2; exit 3; }

# --- packages ---------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null \
   || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
  [ "$(id -u)" = 0 ] || fail "SLURM packages missing and not root: apt-get install ${PACKAGES[*]}"
  command -v apt-get >/dev/null || fail "SLURM packages missing and no apt-get"
  # A policy-rc.d that exits 101 keeps the packages' init scripts from starting daemons of their own
  # (removed again afterwards unless one was there before).
  OWN_POLICY=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && OWN_POLICY=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >/dev/null; } \
    || fail "apt-get install ${PACKAGES[*]} failed"
  [ "$OWN_POLICY" = 0 ] || { rm -f /usr/sbin/policy-rc.d; trap - EXIT; }
fi
[ "$(id -u)" = 0 ] || fail "the daemons are started as root here (SlurmUser=root); run as root"

# --- a clean slate: stop whatever an earlier run of this script left behind -----------------------
bash "$HERE/stop_slurm.sh" "$STATE" >/dev/null 2>&1 || true
for port in 6817 6818 6819; do  # slurmctld, slurmd, slurmdbd
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && fail "port $port is taken (another SLURM running?)"
done
MARK="# written by distill tests/slurm/start_slurm.sh"
CONF_DIR=/etc/slurm
for f in slurm.conf gres.conf slurmdbd.conf; do
  [ ! -e "$CONF_DIR/$f" ] || head -1 "$CONF_DIR/$f" | grep -qxF "$MARK" \
    || fail "$CONF_DIR/$f exists and was not written by this script: not touching a real SLURM's configuration"
done
mkdir -p "$STATE"/{run,log,spool/ctld,spool/d} "$CONF_DIR"
export SLURM_CONF=$CONF_DIR/slurm.conf

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds
  local limit=$1 what=$2; shift 2
  for _ in $(seq $((limit * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  fail "$what did not come up within ${limit}s (logs: $STATE/log)"
}

# --- munge: the authentication every SLURM daemon and client uses --------------------------------
mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; }
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged --force
  wait_for 10 munged sh -c 'munge -n | unmunge'
  cp /run/munge/munged.pid "$STATE/run/munged.pid"
fi

# --- MariaDB + slurmdbd: job accounting, so that sacct answers (the test reads SLURM's own records) --
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
[ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$STATE/log/mariadb-install.log" 2>&1
if ! mariadb -e 'SELECT 1' >/dev/null 2>&1; then  # a server already running is used as it is
  touch "$STATE/log/mariadb.log" && chown mysql:mysql "$STATE/log/mariadb.log"  # written as user mysql
  nohup mariadbd --user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock --skip-networking \
    --pid-file=/run/mysqld/distill.pid --log-error="$STATE/log/mariadb.log" >/dev/null 2>&1 &
  wait_for 60 mariadb mariadb -e 'SELECT 1'  # root logs in through the unix socket
  cp /run/mysqld/distill.pid "$STATE/run/mariadb.pid"
fi
mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"

cat > "$CONF_DIR/slurmdbd.conf" <<CONF
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
CONF
chmod 600 "$CONF_DIR/slurmdbd.conf"  # slurmdbd refuses a readable file holding a password

# --- slurm.conf: one node, a cpu (default) and a gpu partition, one fake GPU --------------------------
# slurmd -C prints the node's real CPUs, sockets, cores and memory in slurm.conf syntax.
HARDWARE=$(slurmd -C | head -1 | sed 's/^NodeName=[^ ]* //')
cat > "$SLURM_CONF" <<CONF
$MARK
ClusterName=distill
SlurmctldHost=$NODE
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# cgroup plugins do not work in these containers
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a default, one job is given the node's whole memory
DefMemPerCPU=500
MinJobAge=300
ReturnToService=2
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
NodeName=$NODE $HARDWARE Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
CONF
printf '%s\nName=gpu File=/dev/null\n' "$MARK" > "$CONF_DIR/gres.conf"

slurmdbd
wait_for 30 slurmdbd sacctmgr -n list cluster
sacctmgr -n -P list cluster format=cluster | grep -qx distill || sacctmgr -i add cluster distill >/dev/null
slurmctld -f "$SLURM_CONF"
wait_for 30 slurmctld scontrol ping
slurmd -f "$SLURM_CONF"
wait_for 30 "node $NODE" sh -c "sinfo -h -n $NODE -o %t | grep -qx -e idle -e mix"
wait_for 30 "sacct" sacct -n -X -S now-1minute
echo "SLURM up on $NODE (configuration $CONF_DIR, state $STATE)"
