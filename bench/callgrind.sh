#!/usr/bin/env bash
# bench/callgrind.sh - instructions per token request, immune to a noisy
# machine: `warrant serve` (release) under valgrind --tool=callgrind handles a
# fixed number of token requests per algorithm with a warm credential cache;
# only those requests are counted (instrumentation is switched on after the
# warm-up and off again before the dump).
#
#   bench/callgrind.sh [-n 2000] [-c 16] [--algs "RS256 HS256"] [--bin PATH]
#                      [--trivial-bin PATH | --no-trivial] [-o OUTDIR]
#
# Prints, per algorithm, the instructions per request and their split
# (bench/callgrind_split.py), next to the trivial actix-web POST handler
# (examples/trivial_post.rs) under the same load, and keeps
# OUTDIR/callgrind.<alg>.out for callgrind_annotate. Then counts the server's system calls per request for
# the same requests, natively (strace -c -f), since callgrind counts user
# space only: the kernel's share (TCP, the log line's write(2)) is not in the
# instruction counts.
#
# Caveat: valgrind emulates a CPU without AVX-512, so AWS-LC takes its AVX2
# RSA path under callgrind; the RSA instruction count is not the native
# (IFMA) one. `cargo bench --bench mint` gives the native RSA cost.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
N=2000
C=16
ALGS="RS256 HS256"
BIN=""
TRIVIAL_BIN=""
TRIVIAL=1
OUT=""
PORT=${WARRANT_PORT:-8181}
TRIVIAL_PORT=${TRIVIAL_PORT:-8191}
while [[ $# -gt 0 ]]; do
  case "$1" in
    -n) N=$2; shift 2 ;;
    -c) C=$2; shift 2 ;;
    --algs) ALGS=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    --trivial-bin) TRIVIAL_BIN=$2; shift 2 ;;
    --no-trivial) TRIVIAL=0; shift ;;
    -o) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-$HERE/results/callgrind-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
OHA=${OHA:-}
for c in "$OHA" "$HERE/.tools/bin/oha" "${PEERS_DIR:-/tmp/peers}/tools/oha/bin/oha" "$(command -v oha || true)"; do
  if [[ -n "$c" && -x "$c" ]]; then OHA=$c; break; fi
done
[[ -x "$OHA" ]] || { echo "oha not found (see bench/README.md)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/warrant-callgrind.XXXXXX)
chmod 700 "$WORK"
if [[ -z "$BIN" || ( $TRIVIAL = 1 && -z "$TRIVIAL_BIN" ) ]]; then
  (cd "$ROOT" && cargo build --release -p warrant --bin warrant --example trivial_post >&2)
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
cp "${BIN:-$TARGET/release/warrant}" "$WORK/wc-warrant"
WARRANT="$WORK/wc-warrant"
if [[ $TRIVIAL = 1 ]]; then
  cp "${TRIVIAL_BIN:-$TARGET/release/examples/trivial_post}" "$WORK/wc-trivial-post"
fi
SERVER_PID=""
cleanup() {
  set +e
  [[ -n "$SERVER_PID" ]] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  cp "$WORK/serve.log" "$OUT/" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export WARRANT_DATABASE_URL="sqlite:$WORK/warrant.db"
export WARRANT_MASTER_KEY_FILE="$WORK/keys/master.key"
export WARRANT_LISTEN="127.0.0.1:$PORT"
export WARRANT_ISSUER="http://127.0.0.1:$PORT"
mkdir -p "$WORK/keys"; chmod 700 "$WORK/keys"
BASE="http://127.0.0.1:$PORT"
HS_AUD="urn:bench:hs256"

wait_ready() { # wait_ready PID TIMEOUT_S [BASE_URL]
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$1" 2>/dev/null || { echo "server exited; log:" >&2; tail -20 "$WORK/serve.log" >&2; exit 1; }
    curl -sf -o /dev/null "${3:-$BASE}/readyz" && return 0
    sleep 0.1
  done
  echo "server not ready after $2 s" >&2; exit 1
}
stop() { kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""; }

log "set-up: database, keys, one client per algorithm"
"$WARRANT" serve >>"$WORK/serve.log" 2>&1 & SERVER_PID=$!
wait_ready "$SERVER_PID" 30
stop
w() { "$WARRANT" "$@" 2>>"$WORK/cli.log"; }
for alg in ES256 EdDSA; do
  w keys generate --alg "$alg" >/dev/null
  w keys rotate --alg "$alg" --force-unsafe-promotion >/dev/null
done
w keys generate --alg HS256 --audience "$HS_AUD" >/dev/null
w keys export-secret --audience "$HS_AUD" >/dev/null
w keys rotate --audience "$HS_AUD" --force-unsafe-promotion >/dev/null
declare -A ARGS
for alg in $ALGS; do
  if [[ $alg = HS256 ]]; then sign=RS256; aud=$HS_AUD; else sign=$alg; aud=urn:bench:api; fi
  read -r id secret < <(w client create --name "cg-$alg" --scope "read write" --audience "$aud" --alg "$sign" --json \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["client_id"], d["client_secret"])')
  [[ -n "${id:-}" ]] || { echo "warrant client create failed:" >&2; tail -5 "$WORK/cli.log" >&2; exit 1; }
  body="grant_type=client_credentials"
  [[ $alg = HS256 ]] && body+="&resource=$HS_AUD"
  ARGS[$alg]="-a $id:$secret -d $body"
done
ARGS[trivial]="-a trivial:x -d grant_type=client_credentials"
load() { # load ALG N C
  local base=$BASE
  [[ $1 = trivial ]] && base="http://127.0.0.1:$TRIVIAL_PORT"
  # shellcheck disable=SC2086
  "$OHA" -n "$2" -c "$3" --no-tui --output-format json -m POST -T application/x-www-form-urlencoded \
    ${ARGS[$1]} "$base/oauth/token" >"$WORK/oha.json"
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); s=d["statusCodeDistribution"]; sys.exit(0 if list(s) == ["200"] else "statuses %s" % s)' "$WORK/oha.json"
}

log "callgrind: $N requests per algorithm at c=$C, warm cache"
valgrind --tool=callgrind --instr-atstart=no --dump-instr=no \
  --callgrind-out-file="$WORK/callgrind.out" "$WARRANT" serve >>"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
wait_ready "$SERVER_PID" 300
for alg in $ALGS; do
  load "$alg" 200 "$C"   # warm-up: the credential cache, connections, allocator
  callgrind_control -z "$SERVER_PID" >/dev/null
  callgrind_control -i on "$SERVER_PID" >/dev/null
  load "$alg" "$N" "$C"
  callgrind_control -i off "$SERVER_PID" >/dev/null
  callgrind_control -d "$alg" "$SERVER_PID" >/dev/null
  sleep 1
  f=$(ls -t "$WORK"/callgrind.out.* | head -1)
  mv "$f" "$OUT/callgrind.$alg.out"
done
stop
if [[ $TRIVIAL = 1 ]]; then
  log "callgrind: the trivial actix-web POST handler, same load"
  valgrind --tool=callgrind --instr-atstart=no --dump-instr=no \
    --callgrind-out-file="$WORK/callgrind.out" "$WORK/wc-trivial-post" "127.0.0.1:$TRIVIAL_PORT" >>"$WORK/serve.log" 2>&1 &
  SERVER_PID=$!
  wait_ready "$SERVER_PID" 300 "http://127.0.0.1:$TRIVIAL_PORT"
  load trivial 200 "$C"
  callgrind_control -z "$SERVER_PID" >/dev/null
  callgrind_control -i on "$SERVER_PID" >/dev/null
  load trivial "$N" "$C"
  callgrind_control -i off "$SERVER_PID" >/dev/null
  callgrind_control -d trivial "$SERVER_PID" >/dev/null
  sleep 1
  f=$(ls -t "$WORK"/callgrind.out.* | head -1)
  mv "$f" "$OUT/callgrind.trivial.out"
  stop
fi

log "strace -c -f: system calls for $N requests per algorithm (native)"
for alg in $ALGS; do
  "$WARRANT" serve >>"$WORK/serve.log" 2>&1 & SERVER_PID=$!
  wait_ready "$SERVER_PID" 30
  load "$alg" 200 "$C"
  strace -c -f -p "$SERVER_PID" -o "$OUT/strace.$alg.txt" & STRACE=$!
  sleep 1
  load "$alg" "$N" "$C"
  sleep 0.5
  kill -INT "$STRACE"; wait "$STRACE" || true
  stop
done

echo
echo "Command: bench/callgrind.sh -n $N -c $C --algs \"$ALGS\"${BIN:+ --bin $BIN}${TRIVIAL_BIN:+ --trivial-bin $TRIVIAL_BIN}"
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%Y-%m-%dT%H:%MZ)"
for alg in $ALGS; do
  echo
  baseline=()
  [[ $TRIVIAL = 1 ]] && baseline=(--baseline "$OUT/callgrind.trivial.out")
  python3 "$HERE/callgrind_split.py" --requests "$N" --strace "$OUT/strace.$alg.txt" "${baseline[@]}" \
    "$OUT/callgrind.$alg.out" | tee "$OUT/split.$alg.md"
done
