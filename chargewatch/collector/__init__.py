"""The collector: all I/O and wiring (MQTT in, InfluxDB out, HTTP, ledger, notifiers)."""
