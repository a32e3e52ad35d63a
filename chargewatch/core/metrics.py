"""The collector's own Prometheus metrics (low cardinality: no charger labels)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("chargewatch_messages_total", "MQTT messages received", ["kind"])
SAMPLES = Counter("chargewatch_samples_total", "Meter samples accepted")
REJECTED = Counter(
    "chargewatch_rejected_total", "Messages or samples rejected, by reason", ["reason"]
)
SKIPPED = Counter(
    "chargewatch_messages_skipped_total",
    "Messages received and deliberately not processed (another collector owns the charger)",
    ["reason"],
)
DEADLETTER_BYTES = Gauge("chargewatch_deadletter_bytes", "Size of the dead-letter files")
INGEST_LAG = Gauge(
    "chargewatch_ingest_lag_seconds", "Age of the oldest message waiting to be processed"
)
QUEUE_DEPTH = Gauge("chargewatch_queue_depth", "Messages received and not yet processed")
BATCH_SECONDS = Histogram(
    "chargewatch_batch_seconds",
    "Time to process one batch through the pipeline",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
LINES_WRITTEN = Counter("chargewatch_influx_lines_written_total", "Lines accepted by InfluxDB")
WRITE_ERRORS = Counter(
    "chargewatch_influx_write_errors_total", "Failed InfluxDB writes", ["reason"]
)
WRITE_SECONDS = Histogram(
    "chargewatch_influx_write_seconds",
    "InfluxDB write request latency",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INFLUX_MISCONFIGURED = Gauge(
    "chargewatch_influx_misconfigured",
    "1 while the database or retention policy an InfluxDB writer writes to is missing",
    ["target"],
)
SPOOL_BYTES = Gauge("chargewatch_influx_spool_bytes", "Bytes waiting in the InfluxDB spool")
MQTT_CONNECTED = Gauge("chargewatch_mqtt_connected", "1 while connected to the broker")
MQTT_RECONNECTS = Counter("chargewatch_mqtt_reconnects_total", "Broker reconnections")
CONNECTORS = Gauge("chargewatch_connectors", "Connectors seen", ["inventory"])
CHARGERS_ONLINE = Gauge("chargewatch_chargers_online", "Chargers currently online")
# Set by collector/uptime_export.py every few minutes (faults-reliability dashboard).
PORT_UPTIME = Gauge(
    "chargewatch_port_uptime_percent",
    "Port uptime by the 23 CFR 680.116(b) formula over the ports of a site (site empty: "
    "the fleet), window 30d or 12m (T = 525,600 min); docs/analytics.md, Uptime",
    ["site", "window"],
)
PORTS_AT_OR_BELOW_NEVI = Gauge(
    "chargewatch_ports_at_or_below_nevi_floor",
    "Ports of a site whose trailing 12-month uptime is not above 97 %",
    ["site"],
)
# Set by the alerting stage (the collector-health dashboard and docs/deploy.md read them).
RULE_EVAL_SECONDS = Histogram(
    "chargewatch_rule_evaluation_seconds",
    "Time to evaluate every alert rule once",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
RULES_RELOAD_SUCCESS = Gauge(
    "chargewatch_rules_last_reload_success",
    "Whether the last rule reload succeeded (1) or kept the previous rules (0).",
)
RULES_RELOAD_TIME = Gauge(
    "chargewatch_rules_last_reload_success_timestamp_seconds",
    "When the rules were last loaded successfully (the engine's clock).",
)
# Rules, tariffs and fleet reloaded on SIGHUP (rules also when their files change).
CONFIG_RELOAD_SUCCESS = Gauge(
    "chargewatch_config_last_reload_success",
    "Whether the last load of rules, tariffs or fleet succeeded (1) or kept the previous set (0)",
    ["config"],
)
CONFIG_RELOAD_TIME = Gauge(
    "chargewatch_config_last_reload_success_timestamp_seconds",
    "When rules, tariffs or fleet were last loaded successfully",
    ["config"],
)
CONFIG_RELOADS = Counter(
    "chargewatch_config_reloads_total",
    "Reloads of rules, tariffs or fleet after start, by result (ok, failed)",
    ["config", "result"],
)
ALERTS = Gauge("chargewatch_alerts", "Alert instances by state and severity", ["state", "severity"])
REMEDIATION_COMMANDS = Counter(
    "chargewatch_remediation_commands_total", "Remediation commands published to chargers"
)
REMEDIATION_PUBLISH_ERRORS = Counter(
    "chargewatch_remediation_publish_errors_total",
    "Remediation commands that could not be handed to the broker",
)
REMEDIATION_SUPPRESSED = Counter(
    "chargewatch_remediation_suppressed_total",
    "Remediation commands due and not sent (paused, charger_rate, site_rate, fleet_rate)",
    ["reason"],
)
STORAGE_ERRORS = Counter(
    "chargewatch_storage_errors_total",
    "Failed attempts to write a store because the disk is full or failing "
    "(ENOSPC, EDQUOT, EIO, SQLITE_FULL); each is retried",
    ["store", "errno"],
)
STORAGE_DEGRADED = Gauge(
    "chargewatch_storage_degraded",
    "1 while writes to this store fail: acknowledgements to the broker are held",
    ["store"],
)
