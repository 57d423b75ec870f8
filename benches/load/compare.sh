#!/usr/bin/env bash
# The load comparison: authz-edge against nginx, in one interleaved run on loopback.
#   bash benches/load/compare.sh [--rounds 3] [--duration 5] [--connections 32] [--workers 1]
#                                [--stalled-sink] [--only LETTERS] [--open-loop-rate 10000]
#                                [--callgrind SECONDS]
# Installs nginx and wrk from Debian if missing, builds the release binary, plain Pingora, the
# lean tokio relay and the open-loop load (Cargo examples), then runs compare.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
command -v cmake >/dev/null || missing+=(cmake)
case " $* " in *" --callgrind "*) command -v valgrind >/dev/null || missing+=(valgrind) ;; esac
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build --release --locked --bin authz-edge --example plain_pingora --example openloop \
  --example lean_relay --example hyper_relay
exec python3 benches/load/compare.py --binary target/release/authz-edge \
  --plain-pingora target/release/examples/plain_pingora \
  --lean-relay target/release/examples/lean_relay \
  --hyper-relay target/release/examples/hyper_relay \
  --openloop target/release/examples/openloop "$@"
