"""The collector service: MQTT in, pipeline, InfluxDB out, HTTP endpoints.

Threads: ``collector.mqtt_loop`` (paho network loop, only enqueues),
``collector.pipeline`` (decode and every stage, in batches),
``collector.influx_send``/``collector.influx_flush`` (writer), ``collector.http``.
"""

from __future__ import annotations

__all__ = ["Collector"]

import logging
import threading
import time
from pathlib import Path
from typing import Any

from chargewatch.collector import metrics
from chargewatch.collector.deadletter import DeadLetter
from chargewatch.collector.http import HttpServer
from chargewatch.collector.influx import InfluxWriter
from chargewatch.collector.linefile import LineFile
from chargewatch.collector.mqtt import MqttIngest
from chargewatch.collector.pipeline import Pipeline, Stage
from chargewatch.config import Config
from chargewatch.fleet import ConnectorIndex, Fleet, load_fleet

log = logging.getLogger(__name__)


class Collector:
    def __init__(self, config: Config, *, fleet: Fleet | None = None) -> None:
        self.config = config
        data = config.data_dir
        data.mkdir(parents=True, exist_ok=True)
        if fleet is None:
            fleet = load_fleet(config.fleet) if config.fleet else Fleet.empty()
        self.fleet = fleet
        self.index = ConnectorIndex(fleet)
        lim = config.limits
        self.deadletter = DeadLetter(
            data / "rejected.jsonl", max_bytes=lim.deadletter_max_bytes, keep=lim.deadletter_keep
        )
        self.writer: InfluxWriter | None = None
        self.linefile: LineFile | None = None
        if config.influx is not None:
            self.writer = InfluxWriter(config.influx, data / "spool")
        elif config.influx_file is not None:
            self.linefile = LineFile(config.influx_file)
        stages: list[Stage] = []
        self.pipeline = Pipeline(
            self.index,
            lines=self.writer or self.linefile,
            deadletter=self.deadletter,
            stages=stages,
            ocpp=_ocpp_decoder(self.index),
            max_payload_bytes=lim.max_payload_bytes,
            max_samples_per_message=lim.max_samples_per_message,
            max_future_s=lim.max_future_s,
        )
        self.ingest = MqttIngest(config.mqtt)
        self.http: HttpServer | None = None
        if config.http.listen:
            self.http = HttpServer(
                config.http.listen, health=self.health, ready=self.ready, token=config.http.token
            )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_batch_at = time.time()

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        if self.writer is not None:
            self.writer.start()
        if self.http is not None:
            self.http.start()
            log.info("HTTP on port %d (/metrics, /healthz, /readyz, /api/v1)", self.http.port)
        self.ingest.start()
        self._thread = threading.Thread(target=self._loop, name="collector.pipeline", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self.ingest.stop()
        if self.writer is not None:
            self.writer.stop()
        if self.linefile is not None:
            self.linefile.stop()
        if self.http is not None:
            self.http.stop()
        self.deadletter.close()

    def run_forever(self) -> None:
        self.start()
        try:
            while not self._stop.wait(1.0):
                if self._thread is not None and not self._thread.is_alive():
                    raise RuntimeError("pipeline thread died; see the log above")
        finally:
            self.stop()

    # -- the pipeline thread ----------------------------------------------------

    def _loop(self) -> None:
        cfg = self.config
        last_tick = 0.0
        while not self._stop.is_set():
            items = self.ingest.take(cfg.batch_max_messages, timeout=cfg.tick_interval_s / 4)
            now = time.time()
            if items:
                try:
                    self.pipeline.process([(i.topic, i.payload, i.recv) for i in items], now)
                except Exception:
                    # A bug in one stage must not stop ingest; the batch's raw
                    # messages are already in the broker's retry path via no-ack.
                    log.exception("pipeline failed on a batch of %d messages", len(items))
                    continue
                self.ingest.ack(items)
                metrics.INGEST_LAG.set(max(0.0, now - items[0].recv))
                self.last_batch_at = now
            else:
                metrics.INGEST_LAG.set(0.0)
            metrics.QUEUE_DEPTH.set(len(self.ingest.inbox))
            if now - last_tick >= cfg.tick_interval_s:
                last_tick = now
                self.pipeline.tick(now)
                if self.linefile is not None:
                    self.linefile.flush()
                metrics.CONNECTORS.labels(inventory="known").set(
                    int(self.index.known[: len(self.index)].sum())
                )
                metrics.CONNECTORS.labels(inventory="unknown").set(
                    len(self.index) - int(self.index.known[: len(self.index)].sum())
                )

    # -- health ---------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        alive = self._thread is not None and self._thread.is_alive()
        return alive, {"pipeline_alive": alive}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        mqtt_ok = self.ingest.connected.is_set()
        detail: dict[str, Any] = {"mqtt_connected": mqtt_ok}
        ok = mqtt_ok and self.health()[0]
        if self.writer is not None:
            detail["influx_error"] = self.writer.last_error
            detail["spool_bytes"] = self.writer.spool.bytes
        return ok, detail


def _ocpp_decoder(index: ConnectorIndex) -> Any:
    try:
        from chargewatch.collector.decode_ocpp import OcppDecoder  # noqa: PLC0415
    except ImportError:
        return None
    return OcppDecoder(index)


def data_dir_default() -> Path:
    return Path("chargewatch-data")
