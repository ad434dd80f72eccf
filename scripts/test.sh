#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what a test tier needs, then runs it.
#   bash scripts/test.sh
# Tiers: unit and property tests; the mock cluster (feature `mock`) with librdkafka against it,
# faults included; librdkafka interop, both directions (the rdkafka crate builds
# librdkafka from source, with OpenSSL for TLS and SCRAM: scripts/install-deps.sh installs
# Debian's libssl-dev if missing); TLS and SASL both ways; hostile input; a real broker
# (tansu, installed from crates.io on first use, ~11 minutes on 2 cores, then cached in
# ~/.cargo/bin); doc tests; and a build of every example and bench.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo is required: https://rustup.rs" >&2; exit 1; }
command -v cc >/dev/null || command -v gcc >/dev/null || { echo "a C compiler is required (librdkafka builds from source)" >&2; exit 1; }
bash scripts/install-deps.sh

TANSU_VERSION=0.6.0
if [ -n "${TANSU:-}" ]; then
  echo "using tansu at $TANSU"
elif command -v tansu >/dev/null && cargo install --list | grep -q "^tansu v$TANSU_VERSION:"; then
  echo "tansu $TANSU_VERSION already installed"
else
  echo "installing tansu $TANSU_VERSION (memory storage needs the dynostore feature)"
  cargo install tansu --version "$TANSU_VERSION" --features dynostore --locked
fi

cargo build --all-targets --features tansu-tests,cli,oidc,opentelemetry
cargo test --all-targets --features tansu-tests,cli,oidc,opentelemetry
cargo test --doc --features mock,opentelemetry
