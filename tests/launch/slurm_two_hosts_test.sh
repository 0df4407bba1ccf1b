#!/bin/bash
# A graph spread over two hosts for real (issue 27): two network namespaces on this machine, a
# veth link between them, a real Slurm (slurmctld, and a slurmd per namespace, with munge) made
# by this test. The launch README's Slurm batch script is submitted as written (`sbatch --wait`):
# the serving graph over tcp between the hosts, keyed with CurveZMQ, `srun gfdit node --slurm`.
# Mid-run the link goes down for a few seconds. The client must get every request answered
# (none unfinished, none failed), and the job must end by itself when the client does.
#
#   slurm_two_hosts_test.sh GFDIT_EXE SOURCE_DIR
# Exit 77 (skipped) without root, network namespaces or Slurm/munge.
set -u
GFDIT=$1
SRC=$2
DOWN_S=${GFDIT_LINK_DOWN_S:-3}

skip() {
  echo "SKIPPED: $*"
  exit 77
}
fail() {
  echo "FAILED: $*"
  exit 1
}
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, slurmd)"
for t in ip nsenter unshare munged slurmctld slurmd sbatch sinfo; do
  command -v $t > /dev/null || skip "$t is not installed (Debian: slurm-wlm munge iproute2 util-linux)"
done

D=$(mktemp -d /tmp/gfdit-slurm.XXXXXX)
chmod 755 "$D"
NS_A=gfdit-a-$$
NS_B=gfdit-b-$$
VA=gfva$$
VB=gfvb$$
cleanup() {
  for f in "$D"/slurmd.*.pid "$D"/slurmctld.pid "$D"/munge/pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2> /dev/null
  done
  sleep 1
  # whatever the job left (it should have left nothing)
  for ns in $NS_A $NS_B; do
    ip netns pids $ns 2> /dev/null | xargs -r kill -9 2> /dev/null
    ip netns del $ns 2> /dev/null
  done
  [ -n "${KEEP:-}" ] || rm -rf "$D"
}
trap cleanup EXIT

ip netns add $NS_A 2> /dev/null || skip "cannot make a network namespace here (no CAP_SYS_ADMIN?)"
ip netns add $NS_B || fail "second network namespace"
ip -n $NS_A link set lo up
ip -n $NS_B link set lo up
ip link add $VA netns $NS_A type veth peer name $VB netns $NS_B || skip "cannot make a veth pair here"
ip -n $NS_A addr add 10.77.0.1/24 dev $VA
ip -n $NS_B addr add 10.77.0.2/24 dev $VB
ip -n $NS_A link set $VA up
ip -n $NS_B link set $VB up
printf '127.0.0.1 localhost\n10.77.0.1 hosta\n10.77.0.2 hostb\n' > "$D/hosts"

# On "host" X: its network namespace, and a mount namespace whose /etc/hosts names both hosts
# (not `ip netns exec`: its sysfs of the namespace's own hides the cgroup tree slurmd needs).
on() {
  local ns=$1
  shift
  nsenter --net=/run/netns/$ns unshare -m sh -c "mount --bind $D/hosts /etc/hosts && exec $*"
}

mkdir -p "$D"/{state,log,munge,spool/hosta,spool/hostb,job}
dd if=/dev/urandom of="$D/munge/munge.key" bs=1024 count=1 2> /dev/null
chmod 600 "$D/munge/munge.key"
# A munge of the test's own (pathname sockets reach across network namespaces).
munged --key-file="$D/munge/munge.key" --socket="$D/munge/sock" --pid-file="$D/munge/pid" \
  --log-file="$D/munge/log" --seed-file="$D/munge/seed" -f || fail "munged did not start"
cat > "$D/slurm.conf" << EOF
ClusterName=gfdit
SlurmctldHost=$(hostname -s)(10.77.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$D/munge/sock
CredType=cred/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool/%n
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.%n.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
MailProg=/bin/true
SlurmdParameters=config_overrides
ReturnToService=2
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
NodeName=hosta NodeAddr=10.77.0.1 CPUs=8 State=UNKNOWN
NodeName=hostb NodeAddr=10.77.0.2 CPUs=8 State=UNKNOWN
PartitionName=gfdit Nodes=hosta,hostb Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
export SLURM_CONF=$D/slurm.conf
on $NS_A slurmctld -f "$D/slurm.conf" || fail "slurmctld did not start"
on $NS_A slurmd -f "$D/slurm.conf" -N hosta || fail "slurmd on hosta did not start"
on $NS_B slurmd -f "$D/slurm.conf" -N hostb || fail "slurmd on hostb did not start"
for _ in $(seq 100); do
  [ "$(on $NS_A sinfo -h -N -t idle | wc -l)" = 2 ] && break
  sleep 0.2
done
[ "$(on $NS_A sinfo -h -N -t idle | wc -l)" = 2 ] || fail "the two slurmds did not register: $(tail -n 5 "$D"/log/*)"

# The job as an operator writes it: the README's batch script, its serving.yaml the stock graph
# keyed for tcp between hosts, `gfdit` on the PATH.
J=$D/job
mkdir -p "$J/bin" "$J/gfdit-plugins"  # HOME is $J: the script's plugin folder
ln -s "$GFDIT" "$J/bin/gfdit"
cat > "$J/serving.yaml" << EOF
graph: serving-two-hosts
include: [$SRC/launch/graphs/serving.yaml]
port_base: 7600
security: {keys: keys}
EOF
sed -n '/^Under Slurm, task k runs instance k/,$p' "$SRC/launch/README.md" |
  awk '/^```bash$/ {f = 1; next} f && /^```$/ {exit} f' > "$J/job.sh"
grep -q "gfdit node serving.yaml --slurm" "$J/job.sh" || fail "no Slurm batch script in launch/README.md: $(cat "$J/job.sh")"
ARGS=$(grep -o 'workers:=[0-9]*' "$J/job.sh")
NTASKS=$(grep -o -- '--ntasks=[0-9]*' "$J/job.sh" | cut -d= -f2)
"$GFDIT" keys make "$J/keys" --graph "$J/serving.yaml" $ARGS > "$D/keys.log" 2>&1 || fail "gfdit keys make: $(cat "$D/keys.log")"
# The client's report, written where the test reads it.
sed -i "s|--slurm|--slurm json:=$J/report.json|" "$J/job.sh"

cd "$J"
on $NS_A env PATH=$J/bin:$PATH HOME=$J sbatch --wait --chdir=$J --output=$J/job.out $J/job.sh > "$D/sbatch.out" 2>&1 &
SBATCH=$!
# The link goes down once the graph serves (every node up), for DOWN_S seconds.
for _ in $(seq 300); do
  [ "$(cat "$J/job.out" 2> /dev/null | grep -c "of graph 'serving-two-hosts' up on")" -ge "$NTASKS" ] && break
  sleep 0.1
done
grep -q "of graph 'serving-two-hosts' up on tcp://10.77.0.2" "$J/job.out" || fail "the graph did not come up on both hosts: $(cat "$J/job.out")"
sleep 1
echo "link down for ${DOWN_S} s"
ip -n $NS_A link set $VA down
sleep "$DOWN_S"
ip -n $NS_A link set $VA up
echo "link up"
for _ in $(seq 1200); do
  kill -0 $SBATCH 2> /dev/null || break
  sleep 0.1
done
kill -0 $SBATCH 2> /dev/null && fail "the job did not end within 120 s: $(tail -n 30 "$J/job.out")"
wait $SBATCH
RC=$?
cat "$J/job.out" | grep -v "^\[" | tail -n 30
[ $RC = 0 ] || fail "sbatch --wait exited $RC: $(cat "$D/sbatch.out") $(tail -n 40 "$J/job.out")"
[ -f "$J/report.json" ] || fail "no client report"
python3 - "$J/report.json" << 'EOF' || fail "requests lost"
import json, sys
r = json.load(open(sys.argv[1]))["requests"]
print("requests:", r)
answered = r["done"] + r["rejected"] + r["cancelled"]
ok = r["arrived"] > 0 and r["unfinished"] == 0 and r["failed"] == 0 and answered == r["arrived"]
sys.exit(0 if ok else 1)
EOF
echo "PASSED: every request answered across two hosts with the link down for ${DOWN_S} s"
