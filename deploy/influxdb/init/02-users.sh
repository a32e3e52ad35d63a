# Sourced by the influxdb:1.8 image's init-influxdb.sh on the first start (empty
# data volume), after 01-chargewatch.iql; $INFLUX_CMD runs InfluxQL as the admin.
# Passwords come from Docker secrets, never from this file.
write_pw=$(cat /run/secrets/influxdb_write_password)
read_pw=$(cat /run/secrets/influxdb_read_password)
# The collector writes; Grafana only reads.
$INFLUX_CMD "CREATE USER \"chargewatch\" WITH PASSWORD '$write_pw'"
$INFLUX_CMD "GRANT WRITE ON \"chargewatch\" TO \"chargewatch\""
$INFLUX_CMD "CREATE USER \"grafana\" WITH PASSWORD '$read_pw'"
$INFLUX_CMD "GRANT READ ON \"chargewatch\" TO \"grafana\""
