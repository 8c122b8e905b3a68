#!/usr/bin/env bash
# bench/compare.sh - Warrant side by side with the reference peers, in one run:
# bench/load.sh with the peers' servers added (started with their own
# start.sh from PEERS_DIR, default /tmp/peers, stopped at the end).
#
#   bench/compare.sh [load.sh options]     e.g. bench/compare.sh -z 10 -r 3
#
# Set-up once: cp -r shared/peers /tmp/peers && /tmp/peers/setup.sh
# The table shows Warrant per algorithm, the trivial actix-web POST baseline,
# the peers, the raw single-core RSA-2048 signature rate measured in the same
# run, JWKS GET throughput, start-up time and memory, and which targets hold.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEERS_DIR="${PEERS_DIR:-/tmp/peers}"
PEERS="${PEERS:-oidc-provider-x2 oidc-provider tokendealer}"
if [[ ! -x "$PEERS_DIR/start.sh" ]]; then
  echo "no peers in $PEERS_DIR: cp -r shared/peers $PEERS_DIR && $PEERS_DIR/setup.sh" >&2
  exit 1
fi
exec "$HERE/load.sh" --peers "$PEERS" --peers-dir "$PEERS_DIR" "$@"
