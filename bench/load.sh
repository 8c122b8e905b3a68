#!/usr/bin/env bash
# bench/load.sh - load Warrant's token endpoint (and, with --peers, reference
# servers) on 127.0.0.1 and print one table of medians with the targets.
#
#   bench/load.sh [-z SECONDS] [-r ROUNDS] [-c "16 64"] [--algs "RS256 ES256 EdDSA HS256"]
#                 [--peers "oidc-provider-x2 tokendealer"] [--peers-dir DIR]
#                 [--no-trivial] [--no-raw] [-q QUIET_WAIT_S] [-o OUTDIR]
#                 [--bin WARRANT_BINARY] [--trivial-bin TRIVIAL_POST_BINARY]
#
# What it does, all in one run:
#   1. builds `warrant` and the trivial actix-web POST baseline
#      (examples/trivial_post.rs) in release (or takes the binaries given
#      with --bin / --trivial-bin, e.g. an earlier build to compare with);
#      finds oha or installs it into bench/.tools;
#   2. measures the raw single-core signature rates (cargo bench --bench mint,
#      and `openssl speed rsa2048` when openssl is installed), and the raw
#      RSA-2048 rate per core while every core signs at once (mint bench);
#   3. in a fresh temp dir: a fresh SQLite database, master key, ES256/EdDSA
#      keys made current, an HS256 audience key; one client per algorithm made
#      with `warrant client create ... --json` (secrets argon2id-hashed as
#      always; kept only in the temp dir);
#   4. starts `warrant serve` three times on the existing database and records
#      the time from spawn to the first /readyz 200; the idle RSS;
#   5. starts the trivial baseline and the peers (their own start.sh);
#   6. ROUNDS interleaved rounds (order rotated each round) of SECONDS-long
#      oha runs at each concurrency: POST /oauth/token with
#      client_secret_basic for each algorithm, the baseline, the peers; then
#      JWKS GET for Warrant and the node-oidc-provider peers;
#   7. the peak RSS (VmHWM) after the load, the cold-credential-cache cost;
#      Right before each RS256 run, the raw RSA-2048 rates again (paired);
#   8. prints bench/summarize.py's table and target list; everything is kept
#      in OUTDIR (default bench/results/<timestamp>).
# Every server it started is stopped on exit.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

DURATION=10
ROUNDS=3
CONCS="16 64"
ALGS="RS256 ES256 EdDSA HS256"
PEERS=""
PEERS_DIR="${PEERS_DIR:-/tmp/peers}"
TRIVIAL=1
RAW=1
QUIET=30
OUT=""
BIN=""
TRIVIAL_BIN_ARG=""
WARRANT_PORT=${WARRANT_PORT:-8180}
TRIVIAL_PORT=${TRIVIAL_PORT:-8190}

while [[ $# -gt 0 ]]; do
  case "$1" in
    -z) DURATION=$2; shift 2 ;;
    -r) ROUNDS=$2; shift 2 ;;
    -c) CONCS=$2; shift 2 ;;
    --algs) ALGS=$2; shift 2 ;;
    --peers) PEERS=$2; shift 2 ;;
    --peers-dir) PEERS_DIR=$2; shift 2 ;;
    --no-trivial) TRIVIAL=0; shift ;;
    --no-raw) RAW=0; shift ;;
    -q) QUIET=$2; shift 2 ;;
    -o) OUT=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    --trivial-bin) TRIVIAL_BIN_ARG=$2; shift 2 ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

OUT=${OUT:-$HERE/results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
: >"$OUT/raw.jsonl"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# ---------------------------------------------------------------- tools
find_oha() {
  local c
  for c in "${OHA:-}" "$HERE/.tools/bin/oha" "$PEERS_DIR/tools/oha/bin/oha" "$(command -v oha || true)"; do
    if [[ -n "$c" && -x "$c" ]]; then echo "$c"; return; fi
  done
  log "oha not found: cargo install oha --root bench/.tools"
  cargo install oha --version "${OHA_VERSION:-1.16.0}" --locked --root "$HERE/.tools" >&2
  echo "$HERE/.tools/bin/oha"
}
export OHA; OHA=$(find_oha)
log "oha: $OHA"

cd "$ROOT"
log "cargo build --release (warrant, examples/trivial_post)"
if [[ -z "$BIN" || -z "$TRIVIAL_BIN_ARG" ]]; then
  cargo build --release -p warrant --bin warrant --example trivial_post >&2
fi
# ---------------------------------------------------------------- clean-up
WORK=$(mktemp -d /tmp/warrant-bench.XXXXXX)
chmod 700 "$WORK"
# Private copies under names of their own: the shared target dir may be
# rebuilt meanwhile, and a `pkill warrant` elsewhere must not stop the run.
cp "${BIN:-$ROOT/target/release/warrant}" "$WORK/wb-warrant"
cp "${TRIVIAL_BIN_ARG:-$ROOT/target/release/examples/trivial_post}" "$WORK/wb-trivial-post"
WARRANT="$WORK/wb-warrant"
TRIVIAL_BIN="$WORK/wb-trivial-post"
RESTARTS=0
PEAK_HWM=0
SERVER_PID=""
TRIVIAL_PID=""
STARTED_PEERS=()
cleanup() {
  set +e
  [[ -z "$SERVER_PID" && -f "$WORK/warrant.pid" ]] && SERVER_PID=$(cat "$WORK/warrant.pid")
  [[ -n "$SERVER_PID" ]] && kill -TERM "$SERVER_PID" 2>/dev/null && wait_gone "$SERVER_PID"
  [[ -n "$TRIVIAL_PID" ]] && kill -TERM "$TRIVIAL_PID" 2>/dev/null && wait_gone "$TRIVIAL_PID"
  local p
  for p in "${STARTED_PEERS[@]}"; do "$PEERS_DIR/stop.sh" "$p" >/dev/null 2>&1; done
  cp "$WORK/warrant.log" "$OUT/warrant.log" 2>/dev/null
  rm -rf "$WORK"
}
wait_gone() {
  local i
  for ((i = 0; i < 100; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$WARRANT_PORT" "$TRIVIAL_PORT"; do
  port_free "$p" || { echo "port $p is in use; set WARRANT_PORT / TRIVIAL_PORT" >&2; exit 1; }
done

# ---------------------------------------------------------------- raw limits
EXTRA="$OUT/extra.json"
echo '{}' >"$EXTRA"
extra() { # extra KEY JSON_VALUE
  python3 - "$EXTRA" "$1" "$2" <<'PY'
import json, sys
path, key, value = sys.argv[1], sys.argv[2], sys.argv[3]
d = json.load(open(path)); d[key] = json.loads(value); json.dump(d, open(path, "w"), indent=1)
PY
}
extra rounds "$ROUNDS"
extra duration_s "$DURATION"
extra machine "\"$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)\""

if [[ $RAW = 1 ]]; then
  python3 "$HERE/bench.py" --help >/dev/null
  log "raw signature rates: cargo bench --bench mint"
  python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import bench; bench.wait_quiet(float(sys.argv[2]))' "$HERE" "$QUIET"
  cargo bench -p warrant --bench mint 2>/dev/null | tee "$OUT/mint.txt" >&2
  rsa=$(awk '/^RESULT alg=RS256/ { for (i = 1; i <= NF; i++) if ($i ~ /^raw_per_s=/) { sub("raw_per_s=", "", $i); print $i } }' "$OUT/mint.txt")
  extra raw_rsa2048_sign_per_s "${rsa:-null}"
  extra raw_rsa2048_source '"aws-lc-rs, cargo bench --bench mint"'
  # The same raw signature with every core signing at once (one thread per
  # core): the rate per core a server that keeps both cores busy can reach.
  busy=$(awk '/^RESULT parallel alg=RS256/ { for (i = 1; i <= NF; i++) if ($i ~ /^busy_per_core_per_s=/) { sub("busy_per_core_per_s=", "", $i); print $i } }' "$OUT/mint.txt")
  extra raw_rsa2048_parallel "$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("RESULT parallel alg=RS256"):
        kv = dict(f.split("=", 1) for f in line.split()[2:])
        print(json.dumps({k: float(v) for k, v in kv.items() if k != "alg"}))
        break
else:
    print("null")' "$OUT/mint.txt")"
  extra raw_rsa2048_sign_per_s_per_core_all_busy "${busy:-null}"
  extra mint_bench "$(python3 -c '
import json, sys
out = {}
for line in open(sys.argv[1]):
    if line.startswith("RESULT alg="):
        kv = dict(f.split("=", 1) for f in line.split()[1:])
        out[kv["alg"]] = "mint %s ns, raw %s ns, ratio %s" % (kv["mint_ns"], kv["raw_ns"], kv["ratio"])
print(json.dumps(out))' "$OUT/mint.txt")"
  if command -v openssl >/dev/null; then
    log "openssl speed -seconds 3 rsa2048"
    openssl speed -seconds 3 rsa2048 2>/dev/null | tee "$OUT/openssl.txt" | tail -2 >&2 || true
    ossl=$(awk '/^rsa 2048 bits/ { print $6 }' "$OUT/openssl.txt")
    [[ -n "$ossl" ]] && extra openssl_rsa2048_sign_per_s "$ossl"
  fi
  # The limit to compare with is the faster of the two measurements (a
  # disturbed measurement can only make the raw rate look lower).
  if [[ -n "${ossl:-}" && -n "${rsa:-}" ]] && python3 -c 'import sys; sys.exit(float(sys.argv[1]) <= float(sys.argv[2]))' "$ossl" "$rsa"; then
    extra raw_rsa2048_sign_per_s "$ossl"
    extra raw_rsa2048_source '"openssl speed rsa2048 (faster than the mint bench this run)"'
  fi
fi

# ---------------------------------------------------------------- Warrant set-up
export WARRANT_DATABASE_URL="sqlite:$WORK/warrant.db"
export WARRANT_MASTER_KEY_FILE="$WORK/keys/master.key"
export WARRANT_LISTEN="127.0.0.1:$WARRANT_PORT"
export WARRANT_ISSUER="http://127.0.0.1:$WARRANT_PORT"
mkdir -p "$WORK/keys"; chmod 700 "$WORK/keys"
W_BASE="http://127.0.0.1:$WARRANT_PORT"
HS_AUD="urn:bench:hs256"

start_warrant() { # sets SERVER_PID and READY_MS
  local line
  line=$(python3 "$HERE/start_ready.py" --log "$WORK/warrant.log" --pidfile "$WORK/warrant.pid" \
           --url "$W_BASE/readyz" -- "$WARRANT" serve) || true
  SERVER_PID=$(cat "$WORK/warrant.pid" 2>/dev/null || true)
  [[ $line = ready_ms=* ]] || { echo "warrant did not start; log:" >&2; tail -20 "$WORK/warrant.log" >&2; exit 1; }
  READY_MS=${line#ready_ms=}
}
stop_warrant() {
  kill -TERM "$SERVER_PID"; wait_gone "$SERVER_PID"; SERVER_PID=""
}

log "first start (fresh database, creates master key and RS256 key)"
start_warrant
stop_warrant
w() { "$WARRANT" "$@" 2>>"$WORK/cli.log"; }
for alg in ES256 EdDSA; do
  w keys generate --alg "$alg" >/dev/null
  w keys rotate --alg "$alg" --force-unsafe-promotion >/dev/null
done
w keys generate --alg HS256 --audience "$HS_AUD" >/dev/null
w keys export-secret --audience "$HS_AUD" >/dev/null   # required before promotion; not kept
w keys rotate --audience "$HS_AUD" --force-unsafe-promotion >/dev/null
new_client() { # new_client NAME ALG AUDIENCE -> "id secret"
  w client create --name "$1" --scope "read write" --audience "$3" --alg "$2" --json \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["client_id"], d["client_secret"])'
}
declare -A CRED
for alg in $ALGS; do
  if [[ $alg = HS256 ]]; then CRED[$alg]=$(new_client "bench-$alg" RS256 "$HS_AUD")
  else CRED[$alg]=$(new_client "bench-$alg" "$alg" urn:bench:api); fi
done
COLD=$(new_client bench-cold EdDSA urn:bench:api)
ARGON_CLIENTS=()
for i in 1 2 3 4 5 6 7 8; do ARGON_CLIENTS+=("$(new_client "bench-argon2-$i" EdDSA urn:bench:api)"); done

log "serve -> /readyz 200 with the existing database (3 starts)"
READY=()
for i in 1 2 3; do
  start_warrant
  READY+=("$READY_MS")
  [[ $i -lt 3 ]] && stop_warrant
done
extra ready_ms_runs "[$(IFS=,; echo "${READY[*]}")]"
extra ready_ms_median "$(printf '%s\n' "${READY[@]}" | sort -n | sed -n 2p)"
sleep 1
rss() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
extra idle_rss_kib "$(rss "$SERVER_PID" VmRSS)"
log "warrant pid $SERVER_PID ready in ${READY[*]} ms; idle RSS $(rss "$SERVER_PID" VmRSS) KiB"

# ---------------------------------------------------------------- other servers
if [[ $TRIVIAL = 1 ]]; then
  "$TRIVIAL_BIN" "127.0.0.1:$TRIVIAL_PORT" >"$WORK/trivial.log" 2>&1 &
  TRIVIAL_PID=$!
  for ((i = 0; i < 100; i++)); do
    curl -s -o /dev/null "http://127.0.0.1:$TRIVIAL_PORT/readyz" && break; sleep 0.05
  done
fi
declare -A PEER_URL PEER_PATH PEER_JWKS
for p in $PEERS; do
  conf="$PEERS_DIR/peers.d/$p.conf"
  [[ -f "$conf" ]] || { echo "no peer $p ($conf); run the peers' setup first" >&2; exit 1; }
  PEER_PORT=$(. "$conf"; echo "$PEER_PORT")
  if port_free "$PEER_PORT"; then
    "$PEERS_DIR/start.sh" "$p" >&2
    STARTED_PEERS+=("$p")
  else
    log "peer $p already listening on $PEER_PORT; using it as is"
  fi
  PEER_URL[$p]="http://127.0.0.1:$PEER_PORT"
  PEER_PATH[$p]=$(. "$conf"; echo "${PEER_TOKEN_PATH:-/token}")
  PEER_JWKS[$p]=$(. "$conf"; echo "${PEER_JWKS_PATH:-/jwks}")
done

# ---------------------------------------------------------------- load
# target lines: LABEL|bench.py arguments
TARGETS=()
for alg in $ALGS; do
  read -r id secret <<<"${CRED[$alg]}"
  res=""; [[ $alg = HS256 ]] && res="--resource $HS_AUD"
  TARGETS+=("warrant-$alg|-u $id -p $secret $res $W_BASE /oauth/token")
done
[[ $TRIVIAL = 1 ]] && TARGETS+=("trivial-post|http://127.0.0.1:$TRIVIAL_PORT /oauth/token")
for p in $PEERS; do TARGETS+=("$p|${PEER_URL[$p]} ${PEER_PATH[$p]}"); done
JTARGETS=("jwks:warrant|--get /.well-known/jwks.json $W_BASE")
for p in $PEERS; do
  [[ $p = oidc-provider* ]] && JTARGETS+=("jwks:$p|--get ${PEER_JWKS[$p]} ${PEER_URL[$p]}")
done

# Restarts Warrant if something outside this script stopped it (counted and
# reported: its cache is then cold once more).
ensure_warrant() {
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "WARNING: warrant (pid $SERVER_PID) was stopped from outside; restarting it"
    grep -v "token request" "$WORK/warrant.log" | tail -3 >&2
    RESTARTS=$((RESTARTS + 1))
    start_warrant
    python3 "$HERE/bench.py" -z 1 -c 16 ${TARGETS[0]#*|} >/dev/null 2>&1 || true
  fi
}
track_hwm() {
  local h
  h=$(rss "$SERVER_PID" VmHWM 2>/dev/null || echo 0)
  [[ -n "$h" && "$h" -gt "$PEAK_HWM" ]] && PEAK_HWM=$h
  return 0
}

# The raw RSA-2048 rates (one core alone; per core with every core signing)
# measured right before each RS256 run, one line per run in paired.jsonl:
# this host's speed drifts by 10-15 % within minutes, so the rate measured
# at the start of the run is a noisy yardstick for a load run minutes later.
paired_raw() { # paired_raw C
  python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import bench; bench.wait_quiet(float(sys.argv[2]))' "$HERE" "$QUIET"
  cargo bench -p warrant --bench mint -- RS256 --rounds 9 --parallel-rounds 5 2>/dev/null \
    | python3 -c '
import json, sys
out = {"label": "raw-rsa2048-paired", "c": int(sys.argv[1])}
for line in sys.stdin:
    fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
    if line.startswith("RESULT alg=RS256"):
        out["raw_per_s"] = float(fields["raw_per_s"])
    elif line.startswith("RESULT parallel alg=RS256"):
        out["busy_per_core_per_s"] = float(fields["busy_per_core_per_s"])
        out["disturbed"] = int(fields.get("disturbed", 0))
print(json.dumps(out))' "$1" >>"$OUT/paired.jsonl"
}

run() { # run LABEL C ARGS...
  local label=$1 c=$2; shift 2
  [[ $label = *warrant* ]] && ensure_warrant
  [[ $label = warrant-RS256 && $RAW = 1 ]] && paired_raw "$c"
  # shellcheck disable=SC2068
  python3 "$HERE/bench.py" --format json --wait-quiet "$QUIET" -z "$DURATION" -c "$c" -l "$label" $@ \
    | tee -a "$OUT/raw.jsonl" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print("  %-18s c=%-3d rps=%-8s p50=%-6s p99=%-7s err=%-3s server_cpu=%-5s per_cpu_s=%-6s other=%s" % (
    r["label"], r["c"], r["rps"], r["p50_ms"], r["p99_ms"], r["errors"], r["server_cpu"],
    r["ok_per_server_cpu_s"], r["other_cpu"]), file=sys.stderr)'
  track_hwm
}

log "warm-up (2 s each; fills Warrant's credential cache)"
for t in "${TARGETS[@]}"; do
  python3 "$HERE/bench.py" -z 2 -c 16 ${t#*|} >/dev/null
done

n=${#TARGETS[@]}
for ((r = 0; r < ROUNDS; r++)); do
  log "round $((r + 1))/$ROUNDS"
  for ((k = 0; k < n; k++)); do
    t=${TARGETS[$(((k + r) % n))]}
    for c in $CONCS; do run "${t%%|*}" "$c" ${t#*|}; done
  done
  for t in "${JTARGETS[@]}"; do run "${t%%|*}" 64 ${t#*|}; done
done
ensure_warrant
track_hwm
extra peak_rss_kib "$PEAK_HWM"
extra warrant_restarts "$RESTARTS"
sleep 2
extra idle_rss_after_load_kib "$(rss "$SERVER_PID" VmRSS)"

# ---------------------------------------------------------------- cold cache
# Server CPU (from /proc/PID/stat, all threads, dead ones included) for 512
# requests at c=64 from a client never seen (cold cache) minus the same again
# (warm), in units of one argon2 verify, measured here as the CPU of one
# request from each of 8 other clients never seen (one verify each). No wrong
# secrets: those would trip the failure limits for 127.0.0.1.
cpu_ms() { awk -v t="$(getconf CLK_TCK)" '{ print ($14 + $15) * 1000 / t }' "/proc/$1/stat"; }
burst() { # burst N C ID SECRET -> server CPU ms
  local before after
  before=$(cpu_ms "$SERVER_PID")
  "$OHA" -n "$1" -c "$2" --no-tui --output-format json -m POST -T application/x-www-form-urlencoded \
    -a "$3:$4" -d "grant_type=client_credentials" "$W_BASE/oauth/token" >"$WORK/burst.json"
  sleep 0.5
  after=$(cpu_ms "$SERVER_PID")
  python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$before" "$after"
}
codes() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["statusCodeDistribution"])' "$WORK/burst.json"; }
ensure_warrant
read -r cold_id cold_secret <<<"$COLD"
log "cold credential cache: argon2 cost (8 new clients), then 512 requests at c=64 cold vs warm"
python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import bench; bench.wait_quiet(float(sys.argv[2]))' "$HERE" "$QUIET"
before=$(cpu_ms "$SERVER_PID")
argon_codes=""
for cred in "${ARGON_CLIENTS[@]}"; do
  read -r aid asecret <<<"$cred"
  argon_codes+=$(curl -s -o /dev/null -w '%{http_code} ' -u "$aid:$asecret" -d grant_type=client_credentials "$W_BASE/oauth/token")
done
sleep 0.5
argon_total=$(python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$before" "$(cpu_ms "$SERVER_PID")")
cold=$(burst 512 64 "$cold_id" "$cold_secret")
cold_codes=$(codes)
warm=$(burst 512 64 "$cold_id" "$cold_secret")
warm_codes=$(codes)
extra cold_cache "$(python3 -c '
import json, sys
argon_total, cold, warm = (float(x) for x in sys.argv[1:4])
argon2 = argon_total / 8
extra = cold - warm
print(json.dumps({"clients": 1, "requests": 512, "concurrency": 64, "argon2_ms": round(argon2, 1),
                  "argon2_sample_status": sys.argv[4].strip(),
                  "cold_cpu_ms": cold, "warm_cpu_ms": warm, "extra_cpu_ms": round(extra),
                  "argon2_equiv": round(extra / argon2, 1) if argon2 > 0 else None,
                  "cold_status": sys.argv[5], "warm_status": sys.argv[6]}))' \
  "$argon_total" "$cold" "$warm" "$argon_codes" "$cold_codes" "$warm_codes")"

# ---------------------------------------------------------------- report
log "done; results in $OUT"
echo
echo "Command: bench/$(basename "$0") -z $DURATION -r $ROUNDS -c \"$CONCS\" --algs \"$ALGS\" --peers \"$PEERS\"${BIN:+ --bin $BIN}${TRIVIAL_BIN_ARG:+ --trivial-bin $TRIVIAL_BIN_ARG}"
echo "Machine: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["machine"])' "$EXTRA"); $(date -u +%Y-%m-%dT%H:%MZ)"
echo
python3 "$HERE/summarize.py" "$OUT" | tee "$OUT/summary.md"
