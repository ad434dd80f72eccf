#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what a test tier needs, then runs it.
#   bash scripts/test.sh
# Tiers: unit + property tests, librdkafka interop (the rdkafka crate builds librdkafka from
# source: needs only cargo and a C compiler), doc tests, and a build of every example and bench.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo is required: https://rustup.rs" >&2; exit 1; }
command -v cc >/dev/null || command -v gcc >/dev/null || { echo "a C compiler is required (librdkafka builds from source)" >&2; exit 1; }

cargo build --all-targets
cargo test --all-targets
cargo test --doc
