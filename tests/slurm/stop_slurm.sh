#!/usr/bin/env bash
# Stop the daemons tests/slurm/start_slurm.sh started, by the pid files it recorded (nothing else),
# and remove the /etc/slurm files it wrote (those that carry its mark).
set -uo pipefail
STATE=${1:-/tmp/distill-slurm}
if [ -s "$STATE/run/slurmctld.pid" ]; then  # our own cluster: cancel what a killed test left running
  SLURM_CONF=/etc/slurm/slurm.conf timeout 20 scancel --quiet --user "$(id -un)" 2>/dev/null && sleep 1
fi
for name in slurmd slurmctld slurmdbd mariadb munged; do  # clients before the services they use
  file=$STATE/run/$name.pid
  [ -s "$file" ] || continue
  pid=$(cat "$file")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$file"
done
for f in slurm.conf gres.conf slurmdbd.conf; do
  head -1 "/etc/slurm/$f" 2>/dev/null | grep -qxF "# written by distill tests/slurm/start_slurm.sh" && rm -f "/etc/slurm/$f"
done
exit 0
