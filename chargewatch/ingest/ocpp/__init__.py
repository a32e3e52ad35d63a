"""The OCPP-J decoder's parts (contract: chargewatch.ingest.decode_ocpp)."""
