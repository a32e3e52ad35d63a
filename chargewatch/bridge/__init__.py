"""``chargewatch bridge``: an OCPP-J WebSocket proxy beside any CSMS.

Chargers connect to the bridge as if it were their CSMS; the bridge opens the
same connection to the real CSMS and passes frames through unchanged, mirrors
every frame to MQTT (the capture contract chargewatch ingests), publishes each
charger's online flag, and injects chargewatch's remediation commands.
"""
