#!/usr/bin/env bash
# Schema-driven fuzzing of the HTTP API from openapi.yaml (schemathesis), on a
# fresh server with an embedded database. Usage: .ci/schemathesis.sh [BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/debug/warrant}
work=$(mktemp -d)
venv=${SCHEMATHESIS_VENV:-/tmp/warrant-schemathesis-venv}
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==4.32.5"
fi

export WARRANT_LISTEN=127.0.0.1:0 WARRANT_LOG_LEVEL=info WARRANT_REFRESH_INTERVAL_MS=100
export WARRANT_DATABASE_URL="sqlite:$work/warrant.db" WARRANT_MASTER_KEY_FILE="$work/master.key"
"$binary" serve 2>"$work/serve.log" &
server=$!
for _ in $(seq 1 100); do
  port=$(sed -n 's/.*warrant is listening port=\([0-9]*\).*/\1/p' "$work/serve.log")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { cat "$work/serve.log"; exit 1; }

created=$("$binary" client create --name schemathesis --scope "read write" \
  --audience https://api.example.com --json)
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])" <<<"$created"; }
basic=$(printf '%s:%s' "$(field client_id)" "$(field client_secret)" | base64 -w0)
sleep 0.3

# 413 is the right answer to a schema-violating (oversized) body; positive
# data cannot all be accepted (scopes and audiences depend on registration).
cat >"$work/schemathesis.toml" <<'TOML'
[checks.negative_data_rejection]
expected-statuses = [400, 401, 405, 413, 415, 422, 429]
TOML
cd "$work"
for auth in "Authorization: Basic $basic" "X-No-Auth: 1"; do
  "$venv/bin/schemathesis" run "$OLDPWD/openapi.yaml" --url "http://127.0.0.1:$port" \
    -H "$auth" --checks all --exclude-checks positive_data_acceptance \
    --max-examples 200 --seed 20261130 --no-color
done
