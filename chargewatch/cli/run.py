"""Subcommands owned by the collector: run, replay, record."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

# Each handler imports what it runs (the collector, its config: paho, httpx,
# numpy..., even logging) when it runs, so building the parser at every start
# stays cheap.


def _broker(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host:
        return value, 1883
    try:
        return host, int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HOST[:PORT], got {value!r}") from None


def cmd_run(args: argparse.Namespace) -> int:
    import logging  # noqa: PLC0415 - see the imports

    from chargewatch.collector.service import Collector  # noqa: PLC0415 - heavy imports
    from chargewatch.config.settings import Config, load_config  # noqa: PLC0415

    config = load_config(args.config) if args.config else Config()
    clock = None
    if args.clock == "simulator":
        from chargewatch.collector.sim_clock import FollowedClock  # noqa: PLC0415

        clock = FollowedClock()
    collector = Collector(config, clock=clock)
    log = logging.getLogger(__name__)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("signal %d: shutting down", signum)
        stop.set()

    def on_hup(signum: int, frame: object) -> None:
        # Only a flag here: the pipeline thread reloads at its next turn.
        collector.reloader.request()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hup)
    collector.start()
    log.info("chargewatch collector running (broker %s:%d)", config.mqtt.host, config.mqtt.port)
    try:
        while not stop.wait(1.0):
            if not collector.health()[0]:
                log.error("pipeline thread died; exiting")
                return 1
    finally:
        collector.stop()
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from pathlib import Path  # noqa: PLC0415 - see the imports

    from chargewatch.cli.progress import track_capture  # noqa: PLC0415
    from chargewatch.collector.replay import replay  # noqa: PLC0415 - see the imports
    from chargewatch.config.fleet_file import load_fleet  # noqa: PLC0415
    from chargewatch.config.settings import Config, load_config  # noqa: PLC0415
    from chargewatch.ingest.capture import read_capture  # noqa: PLC0415
    from chargewatch.sessions.session_engine import SessionConfig  # noqa: PLC0415

    # The same config as `run`: its billing policy, detector parameters and
    # OCPP limits, and its fleet, rules and tariffs unless the command line
    # names others.
    config = load_config(args.config) if args.config else Config()
    fleet_file = args.fleet or config.fleet
    fleet = load_fleet(fleet_file) if fleet_file else None
    rules = args.rules or config.rules
    tariffs = args.tariffs or config.tariffs
    capture = Path(args.capture)
    result = replay(
        # A bar on stderr when it is a terminal: a capture of an hour can take a minute.
        track_capture(read_capture(capture), capture.stat().st_size, f"replay {capture.name}"),
        Path(args.out),
        fleet=fleet,
        lines_file=Path(args.lines) if args.lines else None,
        rules=Path(rules) if rules else None,
        tariffs=Path(tariffs) if tariffs else None,
        session_config=SessionConfig(energy_policy=config.billing.energy_policy),
        unknown_tariffs=config.billing.unknown_tariffs,
        receipt_base_url=args.receipt_base_url or config.billing.receipt_base_url,
        detector_config=config.detectors,
        ocpp_config=config.ocpp,
        max_future_s=config.limits.max_future_s,
    )
    s = result.stats
    summary = {
        "messages": s.messages,
        "samples": s.samples,
        "events": s.events,
        "rejected": s.rejected,
        "rejected_by_reason": s.rejected_by_reason,
        "capture_seconds": round(result.capture_span_s, 3),
        "wall_seconds": round(result.seconds, 3),
        "speedup": round(result.capture_span_s / result.seconds, 1) if result.seconds else None,
        # Sessions with no CDR, and what tariffs and the fleet were accepted with.
        "unpriced_sessions": result.unpriced,
        "unpriced_by_reason": result.unpriced_by_reason,
        "tariff_warnings": result.tariff_warnings,
        "open_sessions_at_end": result.open_at_end,
    }
    print(json.dumps(summary, indent=2))
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from pathlib import Path  # noqa: PLC0415 - see the imports

    from chargewatch.ingest.mqtt import MqttConfig  # noqa: PLC0415
    from chargewatch.ingest.record import record  # noqa: PLC0415

    host, port = args.broker
    cfg = MqttConfig(
        host=host,
        port=port,
        username=args.username or "",
        password=args.password or "",
        tls=args.tls,
    )
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    n = record(
        cfg, Path(args.out), duration_s=args.duration, max_messages=args.max_messages, stop=stop
    )
    print(f"recorded {n} messages to {args.out}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the collector service (production)")
    p.add_argument("--config", help="YAML config file (environment overrides: CHARGEWATCH__...)")
    p.add_argument(
        "--clock",
        choices=["wall", "simulator"],
        default="wall",
        help="simulator: run on the clock that `chargewatch simulate --speed N` announces "
        "(simulated time), for testing; default: the wall clock",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("replay", help="run the pipeline over a recorded capture")
    p.add_argument("capture", help="capture file (JSON Lines)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--config", help="YAML config, as for run (billing.energy_policy, fleet, rules, tariffs)"
    )
    p.add_argument("--fleet", help="fleet.yaml (default: the config's)")
    p.add_argument("--rules", help="rules directory (default: the config's)")
    p.add_argument("--tariffs", help="tariffs directory (default: the config's)")
    p.add_argument(
        "--receipt-base-url",
        metavar="URL",
        help="CDRs' signed_data.url: URL/api/v1/sessions/{id}/receipt (billing.receipt_base_url)",
    )
    p.add_argument("--lines", help="also write line protocol to this file")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("record", help="record a capture from a live broker")
    p.add_argument("--broker", type=_broker, default=("127.0.0.1", 1883), help="HOST[:PORT]")
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument("--tls", action="store_true")
    p.add_argument("--out", required=True, help="capture file to append to")
    p.add_argument("--duration", type=float, help="seconds to record (default: until Ctrl-C)")
    p.add_argument("--max-messages", type=int)
    p.set_defaults(func=cmd_record)
