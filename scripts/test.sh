#!/usr/bin/env bash
# Set up and run the whole test suite: installs the real services the
# integration tests use (Mosquitto, InfluxDB 1.6, VictoriaMetrics, Prometheus
# Alertmanager, promtool, PostgreSQL) from Debian when missing, the Python environment,
# then lint, type checks and every test. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in mosquitto:mosquitto influxd:influxdb victoria-metrics:victoria-metrics \
            prometheus-alertmanager:prometheus-alertmanager promtool:prometheus; do
  bin=${pair%%:*}; pkg=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || [ -x "/usr/bin/$bin" ] || need+=("$pkg")
done
# Debian keeps the PostgreSQL server binaries off PATH, in /usr/lib/postgresql/N/bin.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing: ${need[*]}"
  $SUDO apt-get update -qq
  # The packages' own services are not used: tests start private instances.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

./scripts/setup.sh
.venv/bin/ruff check chargewatch tests bench
.venv/bin/ruff format --check chargewatch tests bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
