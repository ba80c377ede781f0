#!/usr/bin/env bash
# load-profile.sh [CLIENTS] [DURATION] — where one action's CPU goes.
#
# Builds ledgerd, starts it on a fresh database, and drives it with the same
# signed single-submit load as ../shared/bench/side-by-side.sh (one hot pool,
# 1,000 users, rate limits lifted). Then it prints what side-by-side does not:
#
#   - CPU per acknowledged action for ledgerd, its PostgreSQL backends and the
#     load generator (from /proc, so it sees PostgreSQL's share too);
#   - how busy the whole machine was (is the run CPU-bound or waiting?);
#   - ledgerd's and PostgreSQL's CPU per action in units of the load
#     generator's, which does the same work per action in every run, so
#     most of this VM's speed drift cancels out (runs minutes apart agree
#     to ~3%, an hour apart to ~10%, where throughput moves by 40%);
#   - each projection's commit-to-projected delay (p50/p99, from
#     ledger_projection_delay_seconds) and how long after the load stops the
#     relay and every projection are at 0 lag;
#   - optionally a CPU profile of ledgerd (PROFILE=FILE), what it allocated
#     meanwhile (ALLOCS=FILE; GC is a tenth of its CPU), and the top
#     statements by execution time (PGSTAT=FILE; needs pg_stat_statements in
#     shared_preload_libraries and the extension created in the postgres
#     database of PGBASE);
#   - optionally the metrics page as the load ends (METRICS=FILE), for the
#     request, append and batch-size histograms;
#   - optionally SQL run on ledgerd's database after the warm-up (SETUP_SQL),
#     to price a schema change under the same load, e.g.
#     SETUP_SQL='DROP INDEX proj_rewards.transactions_user'.
#
# Run from the project root. Variables: PGBASE (server URL without database,
# default postgres://postgres@127.0.0.1:5432), BENCH_DIR (default
# ../shared/bench), PROFILE, ALLOCS, PGSTAT, METRICS, SETUP_SQL. Other engineers' builds on the same
# machine move every figure; compare runs made back to back.
set -euo pipefail
c=${1:-128}
d=${2:-10s}
pgbase=${PGBASE:-postgres://postgres@127.0.0.1:5432}
bench=${BENCH_DIR:-../shared/bench}
tmp=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
mport=$((port + 1))
db=loadprof_$$
pid=
cleanup() {
	if [[ -n $pid ]]; then kill -TERM -- -"$pid" 2>/dev/null || true; sleep 1; kill -KILL -- -"$pid" 2>/dev/null || true; fi
	psql "$pgbase/postgres" -qc "drop database if exists $db with (force)" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

[[ -d $bench/hotpool-reference ]] || { echo "load-profile: no load generator at $bench/hotpool-reference (set BENCH_DIR)" >&2; exit 1; }
(cd "$bench/hotpool-reference" && go build -o "$tmp/gc" .)
go build -o "$tmp/bin/" ./cmd/...
psql "$pgbase/postgres" -qc "create database $db" >/dev/null
export DATABASE_URL="$pgbase/$db?sslmode=disable" LISTEN_ADDR="127.0.0.1:$port" METRICS_ADDR="127.0.0.1:$mport" DATA_DIR="$tmp/data" LOG_LEVEL=warn
export RATE_LIMITS="STANDARD=100000000,PROFESSIONAL=100000000,ENTERPRISE=100000000"
setsid "$tmp/bin/ledgerd" >"$tmp/server.log" 2>&1 &
pid=$!
base=http://127.0.0.1:$port
metrics=http://127.0.0.1:$mport/metrics
for _ in $(seq 1 60); do curl -fsS "$base/readyz" >/dev/null 2>&1 && break; sleep 1; done
curl -fsS "$base/readyz" >/dev/null || { tail -5 "$tmp/server.log"; echo "load-profile: ledgerd not ready" >&2; exit 1; }
printf 'bench-password-1\n' | "$tmp/bin/ledgerctl" users create --email bench@example.com --password-stdin >/dev/null
tok=$(curl -fsS "$base/v1/partner/auth/login" -H 'Content-Type: application/json' \
	-d '{"email":"bench@example.com","password":"bench-password-1"}' | python3 -c 'import sys,json; print(json.load(sys.stdin)["accessToken"])')
curl -fsS "$base/v1/partner/keys" -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
	-d '{"name":"bench","environment":"sandbox"}' >"$tmp/key.json"
sk=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["secretKey"])' "$tmp/key.json")
hs=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["hmacSecret"])' "$tmp/key.json")
"$tmp/gc" -target "$base" -key "$sk" -secret "$hs" -c 16 -d 3s >/dev/null # warm-up: users exist, caches are hot
if [[ -n ${SETUP_SQL:-} ]]; then psql "$pgbase/$db" -v ON_ERROR_STOP=1 -qc "$SETUP_SQL" >/dev/null; fi

ticks() { # utime+stime, in clock ticks, of the given pids
	local total=0 p
	for p in "$@"; do [[ -r /proc/$p/stat ]] && total=$((total + $(awk '{print $14+$15}' "/proc/$p/stat"))); done
	echo "$total"
}
backends() { pgrep -f "postgres: .*$db" | tr '\n' ' '; }
if [[ -n ${PGSTAT:-} ]]; then psql "$pgbase/postgres" -qAtc "select pg_stat_statements_reset()" >/dev/null; fi
stat0=$(head -1 /proc/stat)
l0=$(ticks "$pid")
# shellcheck disable=SC2046 # one pid per word
p0=$(ticks $(backends))
if [[ -n ${PROFILE:-} ]]; then (sleep 2; curl -fsS -o "$PROFILE" "http://127.0.0.1:$mport/debug/pprof/profile?seconds=6") & fi
if [[ -n ${ALLOCS:-} ]]; then (sleep 2; curl -fsS -o "$ALLOCS" "http://127.0.0.1:$mport/debug/pprof/allocs?seconds=6") & fi
"$tmp/gc" -target "$base" -key "$sk" -secret "$hs" -c "$c" -d "$d" >"$tmp/out" &
gcpid=$!
sleep 0.5
g0=$(ticks "$gcpid")
g1=$g0
p1=$p0
# Sampled while the load runs: backends that close before the end still count.
while kill -0 "$gcpid" 2>/dev/null; do
	g1=$(ticks "$gcpid")
	# shellcheck disable=SC2046
	p1=$(ticks $(backends))
	sleep 0.5
done
l1=$(ticks "$pid")
if [[ -n ${METRICS:-} ]]; then curl -fsS -o "$METRICS" "$metrics"; fi
stat1=$(head -1 /proc/stat)
wait "$gcpid"
python3 - "$metrics" <<'PY'
import re, sys, time, urllib.request
url, t0 = sys.argv[1], time.time()
while True:
    m = urllib.request.urlopen(url, timeout=2).read().decode()
    lags = [float(x) for x in re.findall(r'^ledger_(?:projection|relay)_lag_events(?:\{[^}]*\})? (\S+)', m, re.M)]
    if lags and all(l == 0 for l in lags):
        print("caught up %.0f ms after the load stopped" % ((time.time() - t0) * 1000)); break
    if time.time() - t0 > 30:
        print("not caught up 30 s after the load stopped"); break
    time.sleep(0.02)
for proj in sorted(set(re.findall(r'^ledger_projection_delay_seconds_count\{projection="([^"]+)"\}', m, re.M))):
    b = sorted((float('inf') if le == '+Inf' else float(le), float(v)) for le, v in
               re.findall(r'^ledger_projection_delay_seconds_bucket\{projection="%s",le="([^"]+)"\} (\S+)' % proj, m, re.M))
    n = b[-1][1] if b else 0
    if not n: continue
    q = lambda p: next(le for le, c in b if c >= p * n)
    print(f"{proj}: commit->projected p50 <= {q(0.5)*1000:.0f} ms, p99 <= {q(0.99)*1000:.0f} ms ({n:.0f} events)")
PY
cat "$tmp/out"
n=$(grep -oP '\d+(?= acknowledged)' "$tmp/out")
python3 - "$stat0" "$stat1" "$n" "$l0" "$l1" "$p0" "$p1" "$g0" "$g1" <<'PY'
import os, sys
a, b = sys.argv[1].split()[1:], sys.argv[2].split()[1:]
d = [int(y) - int(x) for x, y in zip(a, b)]
print("machine: busy %.0f%%, iowait %.0f%%" % (100 - 100 * (d[3] + d[4]) / sum(d), 100 * d[4] / sum(d)))
n, hz = int(sys.argv[3]), os.sysconf("SC_CLK_TCK")
cpu = {name: (int(sys.argv[y]) - int(sys.argv[x])) / hz
       for name, x, y in (("ledgerd", 4, 5), ("postgres backends", 6, 7), ("load generator", 8, 9))}
for name, s in cpu.items():
    # The load generator does the same work for every action whatever
    # ledgerd does, so its CPU per action tracks this VM's speed at that
    # moment. In its units, runs an hour apart differ by ~10% where raw
    # CPU per action and throughput differ by up to 40%.
    rel = f"  {s / cpu['load generator']:5.2f} x the load generator" if cpu["load generator"] and name != "load generator" else ""
    print(f"{name:18s} {s:6.2f} s CPU  {s / n * 1e6:6.0f} us/action{rel}")
PY
if [[ -n ${PGSTAT:-} ]]; then
	psql "$pgbase/postgres" -qA -F' | ' -c "select calls, round(total_exec_time::numeric) as ms, rows,
		left(regexp_replace(query, '\s+', ' ', 'g'), 140) as query from pg_stat_statements s join pg_database d on d.oid = s.dbid
		where d.datname = '$db' order by total_exec_time desc limit 25" >"$PGSTAT"
fi
