#!/usr/bin/env bash
# Set up a fresh machine and run the demo: embedded broker, ~50 simulated chargers
# with a few faults, the collector, and a live table. Extra arguments go to
# `chargewatch demo` (e.g. --duration 60).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/chargewatch demo "$@"
