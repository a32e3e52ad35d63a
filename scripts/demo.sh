#!/usr/bin/env bash
# Set up a fresh machine and run the demo: embedded broker, ~50 simulated chargers
# with scheduled faults, the collector, and a live view. Extra arguments go to
# `chargewatch demo` (e.g. --duration 60).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/chargewatch demo "$@"
