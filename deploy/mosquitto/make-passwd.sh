#!/bin/sh
# Rebuild deploy/mosquitto/passwd from the MQTT passwords in deploy/secrets/.
# Run after changing any of them (needs mosquitto_passwd: Debian package
# "mosquitto", or: docker run --rm -v "$PWD:/w" -w /w eclipse-mosquitto:2 sh deploy/mosquitto/make-passwd.sh).
# Add chargers with: mosquitto_passwd deploy/mosquitto/passwd <charger-id>
set -eu
here=$(dirname "$0")
secrets="$here/../secrets"
out="$here/passwd"
: > "$out"
for pair in chargewatch-collector:mqtt_collector_password \
            ocpp-bridge:mqtt_ocpp_bridge_password \
            simulator:mqtt_simulator_password; do
    user=${pair%%:*}
    file=${pair#*:}
    mosquitto_passwd -b "$out" "$user" "$(cat "$secrets/$file")"
done
echo "wrote $out"
