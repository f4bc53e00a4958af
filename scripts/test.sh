#!/usr/bin/env bash
# The one test command: format, lints with warnings denied, then every test (unit, snapshot, integration against
# throwaway PostgreSQL clusters the tests start themselves). CI runs exactly this.
#
# Set TIDEGATE_TEST_DATABASE_URL to run the database tests against an existing server instead (fault-injection
# tests that must kill their server still start their own).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo '== cargo fmt --check' >&2
cargo fmt --all -- --check
echo '== cargo clippy (warnings denied)' >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo '== cargo nextest run' >&2
cargo nextest run --workspace --locked --no-fail-fast "$@"
echo '== doc tests' >&2
cargo test --workspace --doc --locked
