#!/usr/bin/env bash
# bench/scale.sh - how Warrant scales with the number of clients (issue #12).
#
#   bench/scale.sh N [-k CHANGES] [--budget SECONDS] [--refresh-ms MS] [-z SECONDS]
#                    [-c CONCURRENCY] [--alg ALG] [-q QUIET_WAIT_S] [--idle SECONDS]
#                    [--ready-timeout SECONDS] [-o OUTDIR] [--bin WARRANT_BINARY]
#
# Uses only the CLI, SQL on the SQLite file and HTTP, so that it measures any
# build the same way (`--bin` takes an earlier build, to compare two).
#   1. builds `warrant` in release (unless --bin); finds oha (as load.sh);
#   2. in a fresh temp dir: `warrant migrate`, a first `serve` (master key,
#      RS256 key), the --alg key made current, ONE client made for real with
#      `warrant client create --json` (argon2id hash; its secret stays in the
#      temp dir); then `serve` on that 1-client database: ready time and
#      settled RSS, the baseline;
#   3. BENCHMARK FIXTURE: 9 more template clients with other scopes and
#      audiences (10 distinct sets), then the database filled up to N clients
#      by copying the templates in SQL (bench/scale.py clone), every copy with
#      the FIRST client's argon2 hash: all copies share its secret. A test
#      fixture to build 1M clients in seconds; never do this in production,
#      and never a mode of the server;
#   4. `serve` on the N-client database: time from spawn to the first
#      /readyz 200, idle RSS once settled, its CPU while idle (polling);
#   5. up to K changes (default 1000, stopped after --budget s, default 180)
#      with `warrant client disable|enable` on copies, one at a time, each
#      waited for until the server has applied it (a refresh interval, then
#      its CPU back to idle): server CPU per change (minus idle), RSS after
#      10, 100, 1000 changes; then one disable/enable checked with token
#      requests (401, then 200) to prove that wait right;
#   6. tokens/s and p99 at c=64 (oha through bench.py, -z s, POST /oauth/token
#      as the first client), quiet, then again while one change a second is
#      made with the CLI; each run starts once the server is idle;
#   7. prints one markdown table; raw outputs stay in OUTDIR (default
#      bench/results/scale-N-<timestamp>), the database is deleted.
# The server polls every --refresh-ms (default 250; the server's own default
# is 1000) so that a change is applied sooner and K changes fit in the budget.
# Everything it starts is stopped on exit. Loopback only.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

[[ $# -ge 1 && $1 =~ ^[0-9]+$ ]] || { sed -n '2,6p' "$0" >&2; exit 2; }
N=$1; shift
[[ $N -ge 2 ]] || { echo "N must be at least 2" >&2; exit 2; }
K=1000
BUDGET=180
REFRESH_MS=250
DURATION=10
CONC=64
ALG=EdDSA
QUIET=10
IDLE_S=5
READY_TIMEOUT=900
OUT=""
BIN=""
BIN_ARG=""
PORT=${SCALE_PORT:-8280}
CHECKPOINTS="10 100 1000"

while [[ $# -gt 0 ]]; do
  case "$1" in
    -k) K=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --refresh-ms) REFRESH_MS=$2; shift 2 ;;
    -z) DURATION=$2; shift 2 ;;
    -c) CONC=$2; shift 2 ;;
    --alg) ALG=$2; shift 2 ;;
    -q) QUIET=$2; shift 2 ;;
    --idle) IDLE_S=$2; shift 2 ;;
    --ready-timeout) READY_TIMEOUT=$2; shift 2 ;;
    -o) OUT=$2; shift 2 ;;
    --bin) BIN=$2; BIN_ARG=$2; shift 2 ;;
    -h|--help) sed -n '2,38p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

OUT=${OUT:-$HERE/results/scale-$N-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
LOAD_START=$(loadavg)
log "N=$N, load average $LOAD_START ($(nproc) cores)"

# ---------------------------------------------------------------- tools
find_oha() {
  local c
  for c in "${OHA:-}" "$HERE/.tools/bin/oha" "${PEERS_DIR:-/tmp/peers}/tools/oha/bin/oha" "$(command -v oha || true)"; do
    if [[ -n "$c" && -x "$c" ]]; then echo "$c"; return; fi
  done
  log "oha not found: cargo install oha --root bench/.tools"
  cargo install oha --version "${OHA_VERSION:-1.16.0}" --locked --root "$HERE/.tools" >&2
  echo "$HERE/.tools/bin/oha"
}
export OHA; OHA=$(find_oha)

cd "$ROOT"
if [[ -z "$BIN" ]]; then
  log "cargo build --release --locked (warrant)"
  cargo build --release --locked -p warrant --bin warrant >&2
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/warrant"
  BUILD="working tree at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock migrations || echo ' (modified)')"
else
  BUILD="--bin $BIN"
fi

# ---------------------------------------------------------------- clean-up
WORK=$(mktemp -d /tmp/warrant-scale.XXXXXX)
chmod 700 "$WORK"
# A private copy under a name of its own: the target dir may be rebuilt
# meanwhile, and a `pkill warrant` elsewhere must not stop the run.
cp "$BIN" "$WORK/ws-warrant"
WARRANT="$WORK/ws-warrant"
BIN_SHA=$(sha256sum "$WARRANT" | cut -c1-12)
SERVER_PID=""
CHURN_PID=""
cleanup() {
  set +e
  [[ -n "$CHURN_PID" ]] && kill -TERM "$CHURN_PID" 2>/dev/null && wait "$CHURN_PID" 2>/dev/null
  [[ -z "$SERVER_PID" && -f "$WORK/warrant.pid" ]] && SERVER_PID=$(cat "$WORK/warrant.pid")
  [[ -n "$SERVER_PID" ]] && kill -TERM "$SERVER_PID" 2>/dev/null && wait_gone "$SERVER_PID"
  cp "$WORK/warrant.log" "$OUT/warrant.log" 2>/dev/null
  cp "$WORK/cli.log" "$OUT/cli.log" 2>/dev/null
  rm -rf "$WORK"
}
wait_gone() {
  local i
  for ((i = 0; i < 300; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_free "$PORT" || { echo "port $PORT is in use; set SCALE_PORT" >&2; exit 1; }

# ---------------------------------------------------------------- set-up
export WARRANT_DATABASE_URL="sqlite:$WORK/warrant.db"
export WARRANT_MASTER_KEY_FILE="$WORK/keys/master.key"
export WARRANT_LISTEN="127.0.0.1:$PORT"
export WARRANT_ISSUER="http://127.0.0.1:$PORT"
export WARRANT_LOG_LEVEL=warn
export WARRANT_REFRESH_INTERVAL_MS=$REFRESH_MS
mkdir -p "$WORK/keys"; chmod 700 "$WORK/keys"
BASE="http://127.0.0.1:$PORT"
DB="$WORK/warrant.db"

start_warrant() { # sets SERVER_PID and READY_MS
  local line
  line=$(python3 "$HERE/start_ready.py" --timeout "$READY_TIMEOUT" --log "$WORK/warrant.log" \
           --pidfile "$WORK/warrant.pid" --url "$BASE/readyz" -- "$WARRANT" serve) || true
  SERVER_PID=$(cat "$WORK/warrant.pid" 2>/dev/null || true)
  [[ $line = ready_ms=* ]] || { echo "warrant did not start; log:" >&2; tail -20 "$WORK/warrant.log" >&2; exit 1; }
  READY_MS=${line#ready_ms=}
}
stop_warrant() {
  kill -TERM "$SERVER_PID"; wait_gone "$SERVER_PID"; SERVER_PID=""; rm -f "$WORK/warrant.pid"
}
w() { "$WARRANT" "$@" 2>>"$WORK/cli.log"; }
S() { python3 "$HERE/scale.py" "$@"; }

log "fresh database: migrate, first start (master key, RS256 key), $ALG key"
w migrate >/dev/null
start_warrant
stop_warrant
if [[ $ALG != RS256 ]]; then
  w keys generate --alg "$ALG" >/dev/null
  w keys rotate --alg "$ALG" --force-unsafe-promotion >/dev/null
fi
new_client() { # new_client NAME SCOPE AUDIENCE... -> "id secret"
  local name=$1 scope=$2; shift 2
  local auds=() a
  for a in "$@"; do auds+=(--audience "$a"); done
  w client create --name "$name" --scope "$scope" "${auds[@]}" --alg "$ALG" --json \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["client_id"], d["client_secret"])'
}
read -r REAL_ID SECRET <<<"$(new_client scale-real "read write" urn:scale:api)"

log "baseline: serve with 1 client"
start_warrant
BASE_READY_MS=$READY_MS
S settle "$SERVER_PID" >"$OUT/base.json"
stop_warrant
log "1 client: ready in $BASE_READY_MS ms, $(cat "$OUT/base.json")"

# Ten distinct scope/audience sets (the first client's is the first), so that
# sharing their strings between clients shows in RSS per client.
TEMPLATES=("$REAL_ID")
for ((k = 1; k < 10 && k < N; k++)); do
  read -r tid _ <<<"$(new_client "scale-template-$k" "read write scale:s$k" urn:scale:api "urn:scale:aud-$k")"
  TEMPLATES+=("$tid")
done
log "BENCHMARK FIXTURE: cloning to $N clients in SQL, all with the first client's hash"
S clone --ids-out "$WORK/ids" -- "$DB" "$N" "$REAL_ID" "${TEMPLATES[@]}" | tee "$OUT/clone.json" >&2

# ---------------------------------------------------------------- N clients
log "serve with $N clients"
start_warrant
log "ready in $READY_MS ms; settling"
S settle "$SERVER_PID" --max 30 >"$OUT/idle.json"
log "idle: $(cat "$OUT/idle.json"); idle CPU over ${IDLE_S}s"
S idle "$SERVER_PID" "$IDLE_S" >"$OUT/idle_cpu.json"
IDLE_NS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["idle_ns_per_s"])' "$OUT/idle_cpu.json")
log "idle server CPU: $IDLE_NS ns/s"

CH=(--warrant "$WARRANT" --ids "$WORK/ids" --refresh-ms "$REFRESH_MS" --idle-ns-per-s "$IDLE_NS")
log "up to $K changes, one at a time, at most ${BUDGET}s"
S changes "${CH[@]}" -k "$K" --budget "$BUDGET" --checkpoints "$CHECKPOINTS" \
  --raw "$OUT/changes.jsonl" "$SERVER_PID" >"$OUT/changes.json"
log "changes: $(cat "$OUT/changes.json")"
S check "${CH[@]}" -- "$SERVER_PID" "$BASE/oauth/token" "$SECRET" >"$OUT/check.json" 2>>"$WORK/cli.log"
log "check: $(cat "$OUT/check.json")"

# ---------------------------------------------------------------- load
bench() { # bench LABEL
  python3 "$HERE/bench.py" --format json --wait-quiet "$QUIET" -z "$DURATION" -c "$CONC" -l "$1" \
    --server-pid "$SERVER_PID" --json-out "$OUT/oha-$1.json" --client-id="$REAL_ID" --client-secret="$SECRET" "$BASE" /oauth/token
}
# A reload still running (1M clients: tens of seconds) would disturb the runs.
server_quiet() { S quiet --idle-ns-per-s "$IDLE_NS" "$SERVER_PID" >>"$OUT/server-quiet.jsonl"; }
server_quiet
log "warm-up (2 s)"
python3 "$HERE/bench.py" -z 2 -c 16 --server-pid "$SERVER_PID" --client-id="$REAL_ID" --client-secret="$SECRET" "$BASE" /oauth/token >/dev/null
server_quiet
log "load, quiet: c=$CONC, ${DURATION}s"
bench quiet >"$OUT/load-quiet.json"
log "$(cat "$OUT/load-quiet.json")"
server_quiet
log "load under churn (one change a second with the CLI)"
S churn "${CH[@]}" --seconds "$DURATION" --every 1 >"$OUT/churn.json" 2>>"$WORK/cli.log" &
CHURN_PID=$!
bench churn >"$OUT/load-churn.json"
wait "$CHURN_PID" || true
CHURN_PID=""
log "$(cat "$OUT/load-churn.json")"

# ---------------------------------------------------------------- report
LOAD_END=$(loadavg)
python3 - "$OUT" "$N" "$BASE_READY_MS" "$READY_MS" "$CONC" "$LOAD_START" "$LOAD_END" "$BUILD" "$BIN_SHA" \
  "$REFRESH_MS" "$ALG" "$DURATION" <<'PY'
import json, os, sys
out, n, base_ready, ready, conc, l0, l1, build, sha, refresh, alg, dur = sys.argv[1:]
def j(name):
    with open(os.path.join(out, name)) as f:
        return json.load(f)
base = j("base.json"); base["ready_ms"] = float(base_ready)
r = {"n": int(n), "ready_ms": float(ready), "base": base, "idle": j("idle.json"),
     "idle_cpu": j("idle_cpu.json"), "clone": j("clone.json"), "changes": j("changes.json"),
     "check": j("check.json"), "churn": j("churn.json"),
     "load": {"quiet": j("load-quiet.json"), "churn": j("load-churn.json")},
     "conc": int(conc), "load_start": l0, "load_end": l1, "build": build, "binary_sha256": sha,
     "refresh_ms": int(refresh), "alg": alg, "duration_s": float(dur)}
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(r, f, indent=1)
PY
log "done; results in $OUT"
echo
echo "Command: bench/$(basename "$0") $N -k $K --budget $BUDGET --refresh-ms $REFRESH_MS -z $DURATION -c $CONC --alg $ALG${BIN_ARG:+ --bin $BIN_ARG}"
echo "Build: $BUILD (binary sha256 $BIN_SHA); $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%Y-%m-%dT%H:%MZ); load average $LOAD_START at start, $LOAD_END at end"
echo
S table --checkpoints "$CHECKPOINTS" "$OUT/results.json" | tee "$OUT/table.md"
