"""The collector service: MQTT in, pipeline, InfluxDB out, HTTP endpoints.

Threads: ``collector.mqtt_loop`` (paho network loop, only enqueues),
``collector.pipeline`` (decode and every stage, in batches),
``collector.influx_send``/``collector.influx_flush`` (writer), ``collector.http``.
"""

from __future__ import annotations

__all__ = ["Collector"]

import logging
import os
import threading
import time
from dataclasses import replace
from typing import Any

import orjson

from chargewatch.alerting import (
    AlertEngine,
    Command,
    Transition,
    default_rules_dir,
    load_allowlist,
)
from chargewatch.api.analytics_api import parse_time
from chargewatch.api.analytics_api import register_routes as register_analytics
from chargewatch.api.fleet_view import fleet_document, ocpi_evses_document
from chargewatch.api.http import HttpServer, Response, error_response, json_response
from chargewatch.api.receipt_api import register_routes as register_receipts
from chargewatch.api.uptime_api import register_routes as register_uptime
from chargewatch.billing.export import billing_csv
from chargewatch.billing.tariff_files import load_tariff_dir
from chargewatch.collector.alert_stage import (
    AlertStage,
    NotifyWorker,
    detector_signals,
    ocpp_versions,
    transition_row,
)
from chargewatch.collector.allocator import keep_freed_batch_memory
from chargewatch.collector.cdr_issuer import CdrIssuer, cdrs_csv, check_tariff_references
from chargewatch.collector.cluster import ClusterMember
from chargewatch.collector.coalesce import Coalesced
from chargewatch.collector.guarded import GuardedStage
from chargewatch.collector.liveness_store import LivenessStore, connector_states
from chargewatch.collector.pipeline import Pipeline, Stage
from chargewatch.collector.reload import ConfigReloader, loaded_summary
from chargewatch.collector.session_stage import RecordListener, SessionStage, as_rejections
from chargewatch.collector.signature_alerts import SignatureFindings
from chargewatch.collector.sim_clock import FollowedClock
from chargewatch.collector.uptime_export import UptimeExporter
from chargewatch.config.fleet_file import load_fleet
from chargewatch.config.settings import Config, OcppConfig
from chargewatch.core import metrics
from chargewatch.core.clock import Clock, WallClock
from chargewatch.core.errors import ConfigError, ConfigProblem
from chargewatch.detectors import DetectorSet
from chargewatch.ingest.cluster import PartitionSessions
from chargewatch.ingest.decode_ocpp import OcppDecoder
from chargewatch.ingest.mqtt import MqttIngest
from chargewatch.model.decoding import Rejection
from chargewatch.model.fleet import ConnectorIndex, Fleet
from chargewatch.notify.notifiers import (
    AlertmanagerNotifier,
    LogNotifier,
    Notifier,
    WebhookNotifier,
)
from chargewatch.sessions.outputs import influx_lines, to_csv
from chargewatch.sessions.session_engine import SessionConfig, SessionEngine
from chargewatch.state.fleet_state import FleetState
from chargewatch.storage.deadletter import DeadLetter
from chargewatch.storage.event_lines import AlertLines, StatusStage
from chargewatch.storage.fleet_store import FleetStateStore
from chargewatch.storage.handover import FleetStateHandover
from chargewatch.storage.health import StorageHealth, StorageUnavailableError
from chargewatch.storage.influx import InfluxWriter
from chargewatch.storage.leases import LeaseTable
from chargewatch.storage.ledger import (
    CollectorBusyError,
    Ledger,
    OwnershipConflictError,
    get_session,
    query_billing,
    query_cdrs,
    query_sessions,
    query_unpriced,
    session_owners,
    with_costs,
)
from chargewatch.storage.linefile import LineFile
from chargewatch.storage.lineproto import LineSink
from chargewatch.storage.rollups import Downsampler

log = logging.getLogger(__name__)


# How often, in wall seconds, the alert engine and fleet state are saved
# whole (changes are journaled as they happen): disk work, not simulated time.
STATE_SAVE_INTERVAL_S = 10.0
# A rollup minute closes this many wall seconds after its end: samples still
# on their way (broker, inbox, a slow batch) count. Delivery takes wall time,
# so on a clock N times faster the grace is N times as many clock seconds.
ROLLUP_GRACE_WALL_S = 10.0


class Collector:
    def __init__(
        self, config: Config, *, fleet: Fleet | None = None, clock: Clock | None = None
    ) -> None:
        """``clock``: what every stage is handed as ``now``, receive times included
        (default the wall clock; simulated time beside a simulator, sim_clock.py)."""
        keep_freed_batch_memory()
        self.config = config
        self.clock: Clock = clock or WallClock(time.time)
        data = config.data_dir
        data.mkdir(parents=True, exist_ok=True)
        if fleet is None:
            fleet = load_fleet(config.fleet) if config.fleet else Fleet.empty()
        self.fleet = fleet
        # Tariffs and the fleet's references to them are checked before anything
        # opens: a typo in a tariff id fails here, with its file:line.
        self.tariffs = load_tariff_dir(config.tariffs) if config.tariffs else {}
        check_tariff_references(fleet, self.tariffs, unknown=config.billing.unknown_tariffs)
        self.index = ConnectorIndex(fleet)
        lim = config.limits
        # A full disk holds the pipeline inside the failing write (retried with
        # backoff, acks withheld) instead of killing it: storage/health.py.
        self.storage = health = StorageHealth()
        self.deadletter = health.retry(
            "deadletter",
            lambda: DeadLetter(
                data / "rejected.jsonl",
                max_bytes=lim.deadletter_max_bytes,
                keep=lim.deadletter_keep,
                health=health,
            ),
        )
        self.writer: InfluxWriter | None = None
        self.rollup_writer: InfluxWriter | None = None
        self.linefile: LineFile | None = None
        if config.influx is not None:
            self.writer = InfluxWriter(config.influx, data / "spool", health=health)
            rp = config.influx.rollup_retention_policy
            if rp and config.influx.api == "v1" and rp != config.influx.retention_policy:
                # Rollups and events live longer than raw samples: their own
                # retention policy, so their own writer and spool.
                rollup_config = replace(
                    config.influx,
                    retention_policy=rp,
                    create_database=False,
                    # Created at start when missing (the README's sample config
                    # must run against a fresh InfluxDB without manual steps).
                    create_retention_duration=config.influx.rollup_retention_duration,
                )
                self.rollup_writer = InfluxWriter(
                    rollup_config, data / "spool-rollup", health=health
                )
        elif config.influx_file is not None:
            line_path = config.influx_file
            self.linefile = health.retry("linefile", lambda: LineFile(line_path, health=health))
        rollups: LineSink | None = self.rollup_writer or self.writer or self.linefile
        self.alert_lines = AlertLines(fleet)
        self.rollups = rollups
        self.state = FleetState(self.index)
        # Written by the pipeline thread, read by the API and the demo's table.
        self.state_lock = threading.Lock()
        stages: list[Stage] = [GuardedStage(self.state, self.state_lock)]
        # Built before its stage (below): the rollups read the charger clock
        # offsets it applies. A restore re-initialises the engine in place, so
        # its accessor stays valid through restarts, take-overs and hand-overs.
        engine = SessionEngine(
            self.index,
            SessionConfig(energy_policy=config.billing.energy_policy, meter_keys=fleet.meter_keys),
        )
        self.downsampler: Downsampler | None = None
        if rollups is not None:
            self.downsampler = Downsampler(
                self.index,
                rollups,
                grace_s=self._rollup_grace(),
                clock_offsets=engine.clock_offsets,
            )
            stages += [self.downsampler, StatusStage(self.index, rollups)]
        self.detectors = DetectorSet(config.detectors, index=self.index)
        self.detector_stage = Coalesced(self.detectors, config.stage_interval_s)
        stages.append(self.detector_stage)
        # Sessions and billing: every finished session priced into a CDR, all in the ledger.
        self.ledger_path = ledger_path = (
            config.ledger_url or config.ledger_path or data / "ledger.sqlite"
        )
        pg = config.ledger_pg
        # Opening may write (WAL files, migrations): a restart on a full disk waits here.
        self.ledger = health.retry(
            "ledger",
            lambda: Ledger(ledger_path, collector_id=config.collector_id, health=health, pg=pg),
        )
        self.cdrs = CdrIssuer(
            fleet,
            self.tariffs,
            ledger=self.ledger,
            lines=rollups,
            receipt_base_url=config.billing.receipt_base_url,
        )
        self.signature_findings = SignatureFindings(self.index)
        session_listeners: list[RecordListener] = [self.cdrs, self.signature_findings]
        if rollups is not None:
            session_listeners.append(lambda recs: rollups.write(influx_lines(recs)))
        self.sessions = SessionStage(
            engine,
            ledger=self.ledger,
            listeners=session_listeners,
            flush_interval_s=config.stage_interval_s,
        )
        # Dynamic partitions: this collector owns nothing until its first lease
        # renewal (the pipeline's first tick) takes a share; collector/cluster.py.
        self.leases = self._lease_table() if config.cluster.enabled else None
        self.cluster: ClusterMember | None = None
        owns = self._owns if self.leases is not None else config.mqtt.partition.owns
        try:
            resumed = self.sessions.resume(owns=owns, now=self.clock.now())
        except (CollectorBusyError, OwnershipConflictError) as exc:
            self.ledger.close()
            key = "collector_id" if isinstance(exc, CollectorBusyError) else "mqtt.partition"
            raise ConfigError([ConfigProblem(config.file, key, str(exc))]) from None
        if resumed:
            log.info(
                "resumed %d open sessions from the ledger",
                len(self.sessions.engine.open_sessions()),
            )
        stages.append(self.sessions)
        self.alert_engine = build_alert_engine(config, self.index)
        self._alert_state_file = data / "alert_state.json"
        self.fleet_store = FleetStateStore(data, self.state, health=health)
        self._saved_changes = 0  # FleetState.changes when last journaled or saved
        self._restore_alert_state()
        # The heartbeat and meter intervals the liveness detectors learned: a
        # charger is told them once, at boot; forgotten, every OCPP charger is
        # judged by the assumed 900 s again (collector/liveness_store.py).
        self.liveness = LivenessStore(
            self.ledger, self.detectors, owns, flush=self.detector_stage.flush
        )
        restored = self.liveness.start(self.clock.now())
        if restored:
            log.info("restored the learned heartbeat and meter intervals of %d chargers", restored)
        # Chargers that moved between collectors take their status with them.
        self.handover = FleetStateHandover(self.ledger, self.state, owns)
        if self.handover.release(self.clock.now()) + self.handover.adopt():
            self._save_state()
        # When each charger was last heard before the stop: a silence begun then
        # is found on time, and one that began during the stop is counted from
        # the restart (ChargerOffline.heard); an outage seen before the stop
        # goes on (restored with the learned state above).
        self.detectors.heard(
            {c: t for c, t in self.state.charger_seen.items() if owns(c)}, self.clock.now()
        )
        # Which connectors are in a session: a charger says it once, at the
        # change; a connector mid-transaction would otherwise not be watched
        # for missing meter values until its next status.
        self.detectors.resume(
            connector_states(self.state, self.sessions.engine.open_sessions(), owns),
            self.clock.now(),
        )
        notifiers: list[Notifier] = []
        if config.alerting.alertmanager:
            notifiers.append(AlertmanagerNotifier(list(config.alerting.alertmanager)))
        if config.alerting.webhook:
            notifiers.append(WebhookNotifier(config.alerting.webhook))
        if config.alerting.log:
            notifiers.append(LogNotifier())
        self.notify = NotifyWorker(notifiers)
        self.ocpp = _ocpp_decoder(self.index, config.ocpp, config.limits.max_future_s)
        self.alerts = AlertStage(
            self.alert_engine,
            self.state,
            providers=[
                detector_signals(self.detectors, self.index, self.detector_stage.flush),
                ocpp_versions(self.ocpp, self.index),
                self.signature_findings.signals,
                self.sessions.signals,
            ],
            deliver=self.notify.submit,
            publish=self._publish_command,
            on_transitions=self._on_transitions,
            deadlines=self.detectors,
        )
        stages.append(self.alerts)
        self.pipeline = Pipeline(
            self.index,
            lines=self.writer or self.linefile,
            deadletter=self.deadletter,
            stages=stages,
            ocpp=self.ocpp,
            max_payload_bytes=lim.max_payload_bytes,
            max_samples_per_message=lim.max_samples_per_message,
            max_future_s=lim.max_future_s,
        )
        self.ingest: MqttIngest | PartitionSessions
        if self.leases is None:
            self.ingest = MqttIngest(
                config.mqtt,
                # Stamped per message in the network thread: the wall clock without a wrapper.
                clock=time.time if isinstance(self.clock, WallClock) else self.clock.now,
                handlers=self.clock.handlers() if isinstance(self.clock, FollowedClock) else None,
            )
        else:
            # A cluster runs on the wall clock: leases are timed by the database's.
            self.ingest = PartitionSessions(
                config.mqtt,
                config.cluster.partitions,
                lambda: list(self.fleet.chargers),
                prefix=config.cluster.session_prefix,
            )
            self.cluster = ClusterMember(
                leases=self.leases,
                ingest=self.ingest,
                ledger=self.ledger,
                sessions=self.sessions,
                state=self.state,
                alerts=self.alert_engine,
                liveness=self.liveness,
            )
            self.cluster.release_at_start(self.clock.now())
            # Set after resume: what this collector replays from its own journal
            # at start was written while it held those leases.
            self.ledger.fencing = self.leases
        self.http: HttpServer | None = None
        self.uptime_export: UptimeExporter | None = None
        if config.http.listen:
            self.http = HttpServer(
                config.http.listen,
                health=self.health,
                ready=self.ready,
                token=config.http.token,
                tokens=config.http.tokens,
                metrics_auth=config.http.metrics_auth,
            )
            # Each route is described in chargewatch.api.openapi.
            self.http.routes["alerts"] = self._api_alerts
            self.http.routes["fleet"] = self._api_fleet
            self.http.routes["ocpi/evses"] = self._api_ocpi_evses
            self.api_ledger = Ledger(ledger_path, read_only=True, pg=pg)
            self.http.routes["sessions"] = self._api_sessions
            self.http.routes["sessions/{session_id}"] = self._api_sessions
            self.http.routes["cdrs"] = self._api_cdrs
            self.http.routes["billing"] = self._api_billing
            register_analytics(self.http, self.api_ledger)
            register_uptime(self.http, self.api_ledger, fleet=self.fleet, clock=self.clock.now)
            # The fleet is looked up per request: a reload's new sites show on receipts.
            register_receipts(
                self.http,
                self.api_ledger,
                lambda: self.fleet,
                config.billing.operator.receipt_fields(),
            )
            # The uptime gauges /metrics serves (the faults-reliability dashboard).
            self.uptime_export = UptimeExporter(
                str(ledger_path), self.fleet, clock=self.clock.now, pg=pg
            )
            self.http.admin_routes["remediation/pause"] = lambda p, r: self._api_pause(True)
            self.http.admin_routes["remediation/resume"] = lambda p, r: self._api_pause(False)
        # SIGHUP (cli/run.py) asks it; the pipeline thread reloads.
        self.reloader = ConfigReloader(self, now=self.clock.now())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cpus_before: set[int] | None = None
        self.last_batch_at = self.clock.now()

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        if self.config.cpus is not None:
            # Set on this thread before the others start: they inherit it.
            self._cpus_before = os.sched_getaffinity(0)
            os.sched_setaffinity(0, self.config.cpus)
            log.info("threads on CPUs %s", ",".join(map(str, self.config.cpus)))
        for line in loaded_summary(self):
            log.info("loaded %s", line)
        self.notify.start()
        for w in (self.writer, self.rollup_writer):
            if w is not None:
                w.start()
        if self.http is not None:
            self.http.start()
            log.info("HTTP on port %d (/metrics, /healthz, /readyz, /api/v1)", self.http.port)
        if self.uptime_export is not None:
            self.uptime_export.start()
        self.ingest.start()
        self._thread = threading.Thread(target=self._run, name="collector.pipeline", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        # A write waiting for disk space gives up (StorageUnavailableError) after
        # its next failed attempt: whatever it held was never acknowledged.
        self.storage.stopping.set()
        if self._thread is not None:
            self._thread.join(30)
        self.ingest.stop()
        if self.leases is not None and self.leases.fenced:
            self.ledger.close()  # another collector owns our partitions: write nothing
            return
        for final_save in (
            self._close_sessions,
            self._save_state,
            self._save_liveness,
            self._leave_cluster,
        ):
            try:
                final_save()
            except StorageUnavailableError as exc:
                log.error("stopping with the disk full; not saved: %s", exc)
        self.fleet_store.close()
        self.notify.stop()
        for w in (self.writer, self.rollup_writer):
            if w is not None:
                w.stop()
        if self.linefile is not None:
            try:
                self.linefile.stop()
            except StorageUnavailableError as exc:
                log.error("stopping with the disk full; lines not written: %s", exc)
        if self._cpus_before is not None:  # (an embedding process keeps its own)
            os.sched_setaffinity(0, self._cpus_before)
            self._cpus_before = None
        if self.uptime_export is not None:
            self.uptime_export.stop()
        if self.http is not None:
            self.http.stop()
        self.deadletter.close()
        self.ledger.close()

    def _close_sessions(self) -> None:
        self.sessions.close(self.clock.now())

    def _lease_table(self) -> LeaseTable:
        if not self.ledger.postgres:  # (the config checks it; a test may not)
            raise ConfigError(
                [ConfigProblem(self.config.file, "cluster.partitions", "needs a PostgreSQL ledger")]
            )
        c = self.config.cluster
        return LeaseTable(
            self.ledger.db, self.config.collector_id, partitions=c.partitions, lease_s=c.lease_s
        )

    def _owns(self, charger: str) -> bool:
        return self.cluster is not None and self.cluster.owns(charger)

    def _save_liveness(self) -> None:
        if self.cluster is None:  # (leaving, a cluster member hands it over)
            self.liveness.save(self.clock.now())

    def _leave_cluster(self) -> None:
        if self.cluster is not None:
            self.cluster.leave(time.time())

    def _run(self) -> None:
        self._loop()
        if self.leases is not None and self.leases.fenced:
            # A lease lost (paused past it, or cut off): stop at once, acknowledging
            # and writing nothing more; the supervisor restarts us (docs/scaling.md).
            log.critical("%s; exiting without writing (code 75)", self.leases.fenced_reason)
            logging.shutdown()
            os._exit(75)

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
            # A timer for the next liveness deadline (a charger offline unless
            # heard before): the tick at that moment pages it then, not at the
            # next regular tick and rule evaluation (docs/alerting.md).
            wake = self.alerts.next_wake()
            wait = cfg.tick_interval_s / 4
            if wake > last_tick:  # (the clock may run faster than the wall's)
                wait = min(wait, max(0.0, (wake - self.clock.now()) / self.clock.speed))
            items = self.ingest.take(
                cfg.batch_max_messages,
                timeout=wait,
                min_items=cfg.batch_min_messages,
                linger_s=cfg.batch_linger_s,
            )
            now = self.clock.now()
            if items:
                try:
                    self.pipeline.process([i[:3] for i in items], now)
                except StorageUnavailableError:
                    return  # stopping while the disk is full: not acknowledged, redelivered
                except Exception as exc:
                    # A bug in one stage must not stop ingest. The batch is kept
                    # whole in the dead-letter file (reason internal_error) and
                    # acknowledged: unacknowledged, the broker would hold it back
                    # until the next reconnect and then redeliver the same poison.
                    log.exception("pipeline failed on a batch of %d messages", len(items))
                    self.deadletter.write(
                        Rejection(
                            i[0],
                            "internal_error",
                            f"{type(exc).__name__}: {exc}",
                            i[1][:4096].decode("utf-8", "replace"),
                            i[2],
                        )
                        for i in items
                    )
                    self.ingest.ack(items)
                    continue
                try:
                    self._make_durable()
                except StorageUnavailableError:
                    return
                self.ingest.ack(items)
                metrics.INGEST_LAG.set(max(0.0, now - items[0][2]))
                self.last_batch_at = now
            else:
                metrics.INGEST_LAG.set(0.0)
            metrics.QUEUE_DEPTH.set(self.ingest.depth())
            self._reload_if_asked(now)
            if now - last_tick >= cfg.tick_interval_s or last_tick < wake <= now:
                last_tick = now
                try:
                    self._tick(now)
                except StorageUnavailableError:
                    return

    def _reload_if_asked(self, now: float) -> None:
        try:
            self.reloader.poll(now)
        except Exception:  # a reload bug must not stop ingest; the old sets stay
            log.exception("reload failed")

    def _make_durable(self) -> None:
        """The batch's writes that are not made by a stage, before its ack."""
        if self.sessions.rejected:
            self.deadletter.write(as_rejections(self.sessions.rejected))
            self.sessions.rejected.clear()
        if self.state.changes != self._saved_changes:
            # A status or online flag is sent once, on change: it must be on
            # disk before the broker forgets the message (the ack below).
            changes = self.fleet_store.journal()
            # And in the ledger's status history, which uptime reads (issue 22).
            self.ledger.write_port_status(changes["connectors"], now=self.clock.now())
            if self.cluster is not None:  # where another host takes it over from
                self.cluster.save_fleet(self.clock.now())
            self._saved_changes = self.state.changes

    def _rollup_grace(self) -> float:
        return ROLLUP_GRACE_WALL_S * max(1.0, self.clock.speed)

    def _tick(self, now: float) -> None:
        if self.downsampler is not None:
            # The speed changes when a simulator's clock is first followed.
            self.downsampler.grace = self._rollup_grace()
        if self.cluster is not None:
            try:
                with self.state_lock:
                    self.cluster.tick(now)
            except StorageUnavailableError:
                raise  # a lease lost (FencedError): the pipeline stops
            except Exception:  # PostgreSQL away: retried next tick; the lease may run out
                log.exception("renewing the partition leases failed")
        try:
            self.pipeline.tick(now)
        except StorageUnavailableError:
            raise
        except Exception:  # as for batches: a stage bug must not stop ingest
            log.exception("pipeline tick failed")
        try:
            with self.state_lock:
                adopted = self.handover.adopt()
            adopted += self.liveness.adopt()
            if adopted:  # released by a collector started after us
                self._save_state()
        except StorageUnavailableError:
            raise
        except Exception:  # a busy or broken ledger must not stop ingest
            log.exception("taking over handed-over fleet state failed")
        if time.monotonic() - self._state_saved_at >= STATE_SAVE_INTERVAL_S:
            self._save_state()
        if self.linefile is not None:
            self.linefile.flush()
        metrics.CHARGERS_ONLINE.set(self.state.chargers_online(now))
        metrics.CONNECTORS.labels(inventory="known").set(
            int(self.index.known[: len(self.index)].sum())
        )
        metrics.CONNECTORS.labels(inventory="unknown").set(
            len(self.index) - int(self.index.known[: len(self.index)].sum())
        )

    # -- alerts -------------------------------------------------------------------

    def _publish_command(self, cmd: Command) -> None:
        # The planner counted this attempt: on disk before the command leaves, so
        # a crash does not repeat it (commands are rare; the save is cheap enough).
        self._save_alert_engine()
        log.warning(
            "remediation: %s to %s connector %s (alert %s, attempt %d)",
            cmd.action, cmd.charger, cmd.connector, cmd.alertname, cmd.attempt,
        )  # fmt: skip
        self.ocpp.note_command(cmd.charger, cmd.ocpp_version, cmd.message_id, cmd.action, cmd.at)
        self.ingest.publish(cmd.topic, cmd.frame.encode(), qos=1)

    def _on_transitions(self, transitions: list[Transition]) -> None:
        self.ledger.write_alert_transitions(transition_row(t) for t in transitions)
        # Saved before the AlertStage hands the notifications to the sender: an
        # alert that paged is firing (with its startsAt) in the state a restart
        # reads, so it is not paged again as new, nor lost.
        self._save_alert_engine()
        if self.rollups is not None:
            self.rollups.write(self.alert_lines.lines(transitions))
        self.recent_transitions.extend(transitions)
        del self.recent_transitions[:-200]

    def _restore_alert_state(self) -> None:
        self._state_saved_at = 0.0
        self.recent_transitions: list[Transition] = []
        legacy = None
        try:
            data = orjson.loads(self._alert_state_file.read_bytes())
            self.alert_engine.restore(data)
            # Collectors before the fleet state store kept the rules' inputs here.
            legacy = data.get("fleet_state")
        except FileNotFoundError:
            pass
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            log.error("ignoring unreadable alert state %s: %s", self._alert_state_file, exc)
        # The rules' inputs: without them the first evaluation after a restart
        # would resolve every status-based alert.
        self.fleet_store.restore(legacy if isinstance(legacy, dict) else None)
        self._saved_changes = self.state.changes

    def _save_alert_engine(self) -> None:
        # Written atomically: a crash mid-write must not lose the previous state.
        data = orjson.dumps(self.alert_engine.snapshot(), default=str)
        self.storage.retry("alert_state", lambda: self._replace_alert_state(data))
        if self.cluster is not None:
            self.cluster.save_alerts(time.time())

    def _replace_alert_state(self, data: bytes) -> None:
        tmp = self._alert_state_file.with_suffix(".tmp")
        try:
            tmp.write_bytes(data)
            tmp.replace(self._alert_state_file)
        except OSError:
            tmp.unlink(missing_ok=True)  # frees what the torn copy took
            raise

    def _save_state(self) -> None:
        """The alert engine, a snapshot of the fleet state it evaluates and what
        the detectors learned."""
        self._save_alert_engine()
        self.fleet_store.save()
        if self.cluster is None:  # (a cluster member saves it itself)
            self.liveness.save_due(self.clock.now())
        self._state_saved_at = time.monotonic()
        self._saved_changes = self.state.changes

    # -- HTTP API ---------------------------------------------------------------

    def _api_alerts(self, params: dict[str, str], rest: list[str]) -> Response:
        """Pending and firing alerts; ``?state=firing`` filters."""
        want = params.get("state")
        if want is not None and want not in ("pending", "firing"):
            return error_response(400, f"state must be pending or firing, got {want!r}")
        alerts = [a.to_public() for a in self.alert_engine.active()]
        if want:
            alerts = [a for a in alerts if a.get("state") == want]
        return json_response({"alerts": alerts})

    def _api_fleet(self, params: dict[str, str], rest: list[str]) -> Response:
        """Current state of every connector (latest values, status, liveness)."""
        return json_response(self.fleet_view(self.clock.now()))

    def _api_ocpi_evses(self, params: dict[str, str], rest: list[str]) -> Response:
        """Each connector as an OCPI 2.2.1 EVSE with its status (AFIR feeds)."""
        now = self.clock.now()
        offline = self.detectors.signals.get("charger_offline")
        with self.state_lock:
            return json_response(ocpi_evses_document(self.state, self.index, now, offline))

    def fleet_view(self, now: float) -> dict[str, Any]:
        """The fleet document of ``/api/v1/fleet``, safe to call from any thread."""
        with self.state_lock:
            return fleet_document(self.state, self.index, now)

    def _api_sessions(self, params: dict[str, str], rest: list[str]) -> Response:
        """``/api/v1/sessions[/{id}]``: filters from, to (RFC 3339 or epoch s), charger,
        site, limit, offset; ``format=csv``."""
        if rest:
            one = get_session(self.api_ledger, rest[0])
            if one is None:
                return error_response(404, f"no session {rest[0]}")
            one["cdr"] = self.api_ledger.issued_cdr(rest[0])
            return json_response(one)
        try:
            q = _query_params(params)
        except ValueError as exc:
            return error_response(400, f"bad query parameter: {exc}")
        rows = query_sessions(self.api_ledger, periods=params.get("format") != "csv", **q)
        if params.get("format") == "csv":
            rows = with_costs(self.api_ledger, rows)
            return 200, "text/csv; charset=utf-8", to_csv(rows).encode()
        return json_response({"sessions": rows, "unpriced": query_unpriced(self.api_ledger)})

    def _api_cdrs(self, params: dict[str, str], rest: list[str]) -> Response:
        """``/api/v1/cdrs``: the current CDR of each session (``history=1``: every CDR
        issued and credited); filters as for sessions; ``format=csv``."""
        history = params.get("history", "0")
        if history not in ("0", "1", "true", "false"):
            return error_response(400, f"bad query parameter: history must be 0/1, got {history!r}")
        try:
            q = _query_params(params)
        except ValueError as exc:
            return error_response(400, f"bad query parameter: {exc}")
        rows = query_cdrs(self.api_ledger, history=history in ("1", "true"), **q)
        if params.get("format") == "csv":
            owners = session_owners(self.api_ledger, (r["session_id"] for r in rows))
            return 200, "text/csv; charset=utf-8", cdrs_csv(rows, owners).encode()
        return json_response({"cdrs": rows})

    def _api_billing(self, params: dict[str, str], rest: list[str]) -> Response:
        """``/api/v1/billing``: a billing row per session (chargewatch.billing.export);
        filters as for sessions; ``format=csv``."""
        try:
            q = _query_params(params)
        except ValueError as exc:
            return error_response(400, f"bad query parameter: {exc}")
        rows = query_billing(self.api_ledger, **q)
        if params.get("format") == "csv":
            return 200, "text/csv; charset=utf-8", billing_csv(rows).encode()
        return json_response({"billing": rows})

    def _api_pause(self, paused: bool) -> Response:
        """``POST /api/v1/remediation/{pause,resume}`` (admin).

        While paused, a command that falls due is suppressed (reason ``paused``)
        and its alert escalated. The flag is read by the pipeline thread at its
        next evaluation and saved with the alert state at its next tick.
        """
        planner = self.alert_engine.planner
        if planner.paused != paused:
            planner.paused = paused
            self._state_saved_at = 0.0  # save at the next tick, from the pipeline thread
            log.warning("remediation %s through the API", "paused" if paused else "resumed")
        return json_response({"paused": planner.paused})

    def demo_rows(self) -> list[tuple[str, str]]:
        """Extra lines for the demo's live table, from the stages that have them."""
        rows: list[tuple[str, str]] = [
            ("alerts firing", str(self.alerts.firing)),
            ("alert transitions", str(self.alerts.transitions)),
            ("open sessions", str(len(self.sessions.engine.open_sessions()))),
            ("sessions finished", str(self.sessions.records_written)),
            ("CDRs issued / unpriced", f"{self.cdrs.issued} / {self.cdrs.unpriced}"),
        ]
        if self.writer is not None:
            rows.append(("lines written to InfluxDB", f"{self.writer.lines_written:,}"))
        if self.linefile is not None:
            rows.append(("lines written to file", f"{self.linefile.lines_written:,}"))
        return rows

    # -- health ---------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        alive = self._thread is not None and self._thread.is_alive()
        return alive, {"pipeline_alive": alive}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        mqtt_ok = self.ingest.is_connected()
        detail: dict[str, Any] = {"mqtt_connected": mqtt_ok}
        degraded = self.storage.degraded
        # While a store cannot be written the pipeline waits and acknowledges
        # nothing: alive, but not taking data.
        detail["storage_degraded"] = degraded
        ok = mqtt_ok and self.health()[0] and not degraded
        for name, writer in (("influx", self.writer), ("influx_rollup", self.rollup_writer)):
            if writer is None:
                continue
            problem = writer_problem(writer)
            detail[f"{name}_error"] = problem
            detail[f"{name}_spool_bytes"] = writer.spool.bytes
            ok = ok and not problem
        return ok, detail


# Past this share of its bound the spool is growing towards loss: not ready.
SPOOL_NOT_READY_FRACTION = 0.5


def writer_problem(writer: InfluxWriter) -> str:
    """Why a writer is not delivering, or "" when it is."""
    if writer.config_error:
        return writer.config_error
    if writer.last_error:
        return writer.last_error
    limit = writer.config.spool_max_bytes * SPOOL_NOT_READY_FRACTION
    if writer.spool.bytes > limit:
        return f"spool at {writer.spool.bytes} bytes, over {int(limit)} (InfluxDB too slow)"
    return ""


def _int_param(params: dict[str, str], key: str, default: int, hi: int) -> int:
    text = params.get(key)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{key} must be an integer, got {text!r}") from None
    if not 0 <= value <= hi:
        raise ValueError(f"{key} must be between 0 and {hi}, got {value}")
    return value


def _query_params(params: dict[str, str]) -> dict[str, Any]:
    """The ledger filters of /sessions and /cdrs; ValueError names the bad parameter."""
    out: dict[str, Any] = {}
    for key, arg in (("from", "start_from"), ("to", "start_to")):
        if key in params:
            try:
                out[arg] = parse_time(params[key])
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
    out["limit"] = _int_param(params, "limit", 1000, 100_000)
    out["offset"] = _int_param(params, "offset", 0, 2**53)
    fmt = params.get("format", "json")
    if fmt not in ("json", "csv"):
        raise ValueError(f"format must be json or csv, got {fmt!r}")
    for key in ("charger", "site"):
        if key in params:
            out[key] = params[key]
    return out


def build_alert_engine(config: Config, index: ConnectorIndex) -> AlertEngine:
    allow = (
        load_allowlist(config.alerting.remediation_allowlist)
        if config.alerting.remediation_allowlist
        else None
    )
    return AlertEngine(
        config.rules or default_rules_dir(),
        index,
        allowlist=allow,
        resend_delay_s=config.alerting.resend_delay_s,
        generator_url=config.alerting.external_url,
        remediation_limits=config.alerting.remediation_limits,
    )


def _ocpp_decoder(
    index: ConnectorIndex, ocpp: OcppConfig | None = None, max_future_s: float = 86_400.0
) -> OcppDecoder:
    """The OCPP-J decoder with the config's limits (``ocpp:``, ``limits.max_future_s``)."""
    o = ocpp or OcppConfig()
    return OcppDecoder(
        index,
        pending_timeout=o.pending_timeout_s,
        max_pending=o.max_pending,
        future_tolerance=max_future_s,
        max_connector=o.max_connector,
        idle_prune_s=o.idle_prune_s,
        max_chargers=o.max_chargers,
    )
