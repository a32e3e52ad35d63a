"""``chargewatch demo``: the whole system on one machine, with nothing to set up.

An embedded broker (amqtt) unless ``--broker`` is given, a simulated fleet of
~50 chargers with a few injected faults, and the collector, with a live table.
Everything it writes goes under one folder (``--data-dir``), which it names at
the start and at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from chargewatch.cli.run import _broker

# The demo runs the whole system (collector, broker, simulator, rich): each
# function imports what it uses when it runs, so that building the parser at
# every ``chargewatch`` start does not import all of it.
if TYPE_CHECKING:
    from pathlib import Path

    from chargewatch.collector.service import Collector
    from chargewatch.model.fleet import Fleet
    from chargewatch.simulator import SimConfig, Simulation


# The shipped example tariffs, by the kind of site the simulator plans.
_SITE_TARIFFS = {"residential": "flat-energy", "workplace": "time-of-use",
                 "public": "idle-fee", "highway": "dc-fast"}  # fmt: skip


def with_shipped_tariffs(fleet: Fleet) -> Fleet:
    """Give every simulated site a default tariff and DC chargers the DC tariff."""
    from dataclasses import replace  # noqa: PLC0415 - see the imports

    from chargewatch.model.fleet import Fleet  # noqa: PLC0415

    sites = {
        k: replace(s, tariff=_SITE_TARIFFS.get(s.name.split(" ")[0], "flat-energy"))
        for k, s in fleet.sites.items()
    }
    chargers = {
        k: replace(c, tariff="dc-fast") if c.is_dc else c for k, c in fleet.chargers.items()
    }
    return Fleet(sites, chargers, fleet.file)


def sim_config(args: argparse.Namespace, start: float) -> SimConfig:
    """The simulation ``chargewatch demo`` runs with ``args`` from ``start``."""
    from chargewatch.simulator import SimConfig  # noqa: PLC0415 - see the imports

    return SimConfig(
        chargers=args.chargers,
        sites=3,
        seed=args.seed,
        start=start,
        # Beyond the demo's end: the publisher marks every charger offline when it finishes.
        duration=(args.duration + 10.0) * args.speed if args.duration else 7 * 86400.0,
        interval=args.interval,
        batch=args.batch,
        arrival_rate=args.arrival_rate,
    )


def story_until(args: argparse.Namespace, start: float) -> float:
    """Sessions stopping 10 simulated minutes before the end are priced in the demo."""
    return start + (args.duration * args.speed if args.duration else 3600.0) - 600.0


def story_simulation(config: SimConfig, until: float) -> tuple[Simulation, Fleet]:
    """The demo's simulation and fleet: its story's faults and top-ups in the
    plan (demo_story), the shipped tariffs, and unpriced chargers among those
    whose sessions stop before ``until``."""
    from chargewatch.cli.demo_story import (  # noqa: PLC0415 - see the imports
        demo_faults,
        finishing,
        mark_unpriced,
        short_sessions,
    )
    from chargewatch.simulator import Simulation  # noqa: PLC0415

    sim = Simulation(config.replace(faults=demo_faults(Simulation(config).plan.chargers)))
    short_sessions(sim)
    fleet = mark_unpriced(with_shipped_tariffs(sim.fleet()), finishing=finishing(sim, until))
    return sim, fleet


def fleet_yaml(fleet: Fleet) -> str:
    import yaml  # noqa: PLC0415 - see the imports

    doc = {
        "sites": [
            {"id": s.id, "timezone": s.timezone, "tariff": s.tariff, "name": s.name}
            for s in fleet.sites.values()
        ],
        "chargers": [
            {k: v for k, v in {
                "id": c.id, "site": c.site, "connectors": c.connectors,
                "max_power_w": c.max_power_w, "phases": c.phases,
                "nominal_voltage_v": c.nominal_voltage_v, "model": c.model, "tariff": c.tariff,
            }.items() if v != ""}
            for c in fleet.chargers.values()
        ],
    }  # fmt: skip
    return yaml.safe_dump(doc, sort_keys=False)


# Written by the demo into its folder: a folder with this file may be wiped by
# the next run; one without it is never touched (it may be the user's).
MARKER = ".chargewatch-demo"


def _prepare_folder(data: Path, resume: bool) -> str:
    """Empty the demo's folder unless resuming; "" or why not."""
    import shutil  # noqa: PLC0415 - see the imports

    if data.exists() and not resume and any(data.iterdir()):
        if not (data / MARKER).exists():
            return f"{data} exists and was not written by the demo; give another --data-dir"
        shutil.rmtree(data)
    data.mkdir(parents=True, exist_ok=True)
    (data / MARKER).write_text("chargewatch demo data; removed by the next demo run\n")
    return ""


@contextlib.contextmanager
def _logs_to_file(path: Path) -> Iterator[None]:
    """While the live table is up, log lines go to ``path``, not through the display."""
    import logging  # noqa: PLC0415 - see the imports

    root = logging.getLogger()
    # Only the plain console handlers: a test's capture handler stays.
    console = [h for h in root.handlers if type(h) is logging.StreamHandler]
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # amqtt warns "messages not broadcasted" for topics nobody subscribes to
    # (the simulator's will messages, commands): normal here, noise on screen.
    amqtt = logging.getLogger("amqtt")
    amqtt_level = amqtt.level
    amqtt.setLevel(logging.ERROR)
    for h in console:
        root.removeHandler(h)
    root.addHandler(to_file)
    try:
        yield
    finally:
        root.removeHandler(to_file)
        to_file.close()
        for h in console:
            root.addHandler(h)
        amqtt.setLevel(amqtt_level)


def _write_report(data: Path) -> tuple[Path | None, str]:
    """``chargewatch report`` over the demo's ledger: the HTML file, or why there is none.

    With the fleet first (connector counts, site time zones); should that fail,
    without it (UTC days), saying why: the minute of data is worth a report.
    """
    out = data / "report"
    base = ["report", "--ledger", str(data / "ledger.sqlite"), "--out", str(out)]
    why = _report([*base, "--fleet", str(data / "fleet.yaml")])
    if why:
        second = _report(base)
        if second:
            return None, second
        return out / "report.html", f"without the fleet file (with it: {why})"
    return out / "report.html", ""


def _report(argv: list[str]) -> str:
    """Run ``chargewatch report``; "" or why it failed."""
    import contextlib as ctx  # noqa: PLC0415 - see the imports
    import io  # noqa: PLC0415

    from chargewatch.cli import main  # noqa: PLC0415

    err = io.StringIO()
    try:
        with ctx.redirect_stdout(io.StringIO()), ctx.redirect_stderr(err):
            rc = main(argv)
    except Exception as exc:  # the demo's minute is not lost to a report bug
        return f"{type(exc).__name__}: {exc}"
    return "" if rc == 0 else (err.getvalue().strip() or f"exit status {rc}")


def _stats_rows(collector: Collector, sim: Simulation, started: float, now: float,
                wall_s: float, msg_rate: float) -> list[tuple[str, str]]:  # fmt: skip
    """``started``/``now``: simulated time; ``wall_s``: wall seconds since the start."""
    stats = collector.pipeline.stats
    view = collector.fleet_view(now)
    statuses = [c.get("status") for c in view["connectors"]]
    cdrs = collector.cdrs
    rows = [
        ("simulated time", f"{_clock_text(now)} (+{_span(now - started)})"),
        ("wall time", f"{wall_s:.0f} s at {collector.clock.speed:g}x"),
        ("messages/s (wall)", f"{msg_rate:,.0f}"),
        ("chargers online", f"{view['chargers_online']} / {len(sim.plan.chargers)}"),
        ("connectors charging", f"{statuses.count('Charging')} / {len(statuses)}"),
        ("connectors faulted", str(statuses.count("Faulted"))),
        ("meter samples stored", f"{stats.samples:,}"),
        ("open sessions", str(len(collector.sessions.engine.open_sessions()))),
        ("sessions finished", str(collector.sessions.records_written)),
        ("CDRs priced", str(cdrs.issued)),
        ("sessions unpriced", str(cdrs.unpriced)),
        ("alert transitions", str(collector.alerts.transitions)),
        ("rejected (dead-letter)", str(rejected(collector))),
    ]
    return rows


def _clock_text(t: float) -> str:
    from datetime import UTC, datetime  # noqa: PLC0415 - see the imports

    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S UTC")


def _span(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def rejected(collector: Collector) -> int:
    """Every rejection written to rejected.jsonl: message and session ones alike."""
    return sum(collector.deadletter.counts.values())


def cmd_demo(args: argparse.Namespace) -> int:
    # See the imports at the top for why these are here.
    from pathlib import Path  # noqa: PLC0415 - not for every CLI start

    from rich.console import Console  # noqa: PLC0415
    from rich.live import Live  # noqa: PLC0415

    from chargewatch.cli.demo_view import DemoLog, view  # noqa: PLC0415

    console = Console(soft_wrap=True)  # paths print whole, to copy and paste
    if args.speed <= 0:
        console.print(f"[red]chargewatch demo: --speed must be > 0, got {args.speed:g}[/red]")
        return 2
    data = Path(args.data_dir).resolve()
    problem = _prepare_folder(data, args.resume)
    if problem:
        console.print(f"[red]chargewatch demo: {problem}[/red]")
        return 2
    console.print(f"[bold]chargewatch demo[/bold]: data in [cyan]{data}[/cyan]"
                  + (" (resumed)" if args.resume else " (fresh; --resume keeps it)"))  # fmt: skip
    with _logs_to_file(data / "demo.log"):
        return _run(args, console, data, DemoLog(), Live, view)


def _run(args: argparse.Namespace, console: Any, data: Path, demo_log: Any, live_cls: Any,
         render: Any) -> int:  # fmt: skip
    from chargewatch.collector.service import Collector  # noqa: PLC0415
    from chargewatch.config.settings import (  # noqa: PLC0415
        AlertingConfig,
        BillingConfig,
        Config,
        HttpConfig,
    )
    from chargewatch.core.clock import ScaledClock  # noqa: PLC0415
    from chargewatch.core.resources import default_dir  # noqa: PLC0415
    from chargewatch.ingest.embedded_broker import EmbeddedBroker, free_port  # noqa: PLC0415
    from chargewatch.ingest.mqtt import MqttConfig  # noqa: PLC0415
    from chargewatch.simulator.publish import publish  # noqa: PLC0415
    from chargewatch.storage.influx import InfluxConfig  # noqa: PLC0415

    broker: EmbeddedBroker | None = None
    if args.broker:
        host, port = args.broker
    else:
        host, port = "127.0.0.1", free_port(1883)
        broker = EmbeddedBroker(host, port)
        broker.start()
        console.print(f"embedded MQTT broker (amqtt) on {host}:{port}")

    start = args.start if args.start is not None else float(int(time.time()))
    speed = args.speed
    sim, fleet = story_simulation(sim_config(args, start), story_until(args, start))
    (data / "fleet.yaml").write_text(fleet_yaml(fleet))
    sim.write_truth(str(data / "truth.jsonl"))
    allow = data / "remediation.yaml"
    allow.write_text("sites:\n  '*': [Reset, UnlockConnector]\n")
    console.print(
        f"simulated time runs {speed:g}x wall time (--speed) for the fleet, the shipped "
        f"rules and the collector alike; logs: {data / 'demo.log'}"
    )

    influx = InfluxConfig(url=args.influx, database="chargewatch") if args.influx else None
    config = Config(
        data_dir=data,
        # amqtt speaks MQTT 3.1.1 only; an external broker gets MQTT 5.
        mqtt=MqttConfig(
            host=host,
            port=port,
            client_id="chargewatch-demo",
            protocol="5" if args.broker else "3.1.1",
        ),
        influx=influx,
        influx_file=None if influx else data / "meter.lp",
        http=HttpConfig(listen=f"127.0.0.1:{free_port(9108)}"),
        tariffs=default_dir("tariffs"),
        alerting=AlertingConfig(remediation_allowlist=allow),
        # The fleet names a tariff not yet published (mark_unpriced): warned, not fatal.
        billing=BillingConfig(unknown_tariffs="warn"),
    )
    # One clock for everything: the simulator publishes each message when it
    # reads the message's time, and the collector stamps, evaluates and ages by it.
    clock = ScaledClock(start, speed, monotonic=time.monotonic)
    collector = Collector(config, fleet=fleet, clock=clock)
    collector.cdrs.emit = demo_log.cdr
    publish_command = collector.alerts.publish
    assert publish_command is not None  # the collector always publishes remediations

    def record_command(cmd: Any) -> None:
        publish_command(cmd)
        demo_log.command(cmd)

    collector.alerts.publish = record_command
    collector.start()
    if not collector.ingest.wait_connected(15):
        console.print("[red]collector could not connect to the broker[/red]")
        collector.stop()
        return 1
    if collector.http is not None:
        console.print(f"metrics and API: http://127.0.0.1:{collector.http.port}/metrics")

    pub_error: list[BaseException] = []

    def run_publisher() -> None:
        try:
            publish(sim, host=host, port=port, qos=1, clock=clock)
        except BaseException as exc:  # shown in the summary
            pub_error.append(exc)

    threading.Thread(target=run_publisher, name="demo.simulator", daemon=True).start()

    wall0 = time.monotonic()

    def screen(rate: float) -> Any:
        now = clock.now()
        rows = _stats_rows(collector, sim, start, now, time.monotonic() - wall0, rate)
        return render(rows, list(collector.recent_transitions), demo_log, now)

    last_n, last_t, rate = 0, time.monotonic(), 0.0
    try:
        with live_cls(screen(rate), console=console, refresh_per_second=2,
                      transient=False, vertical_overflow="crop") as live:  # fmt: skip
            while args.duration is None or time.monotonic() - wall0 < args.duration:
                time.sleep(1.0)
                now = time.monotonic()
                n = collector.pipeline.stats.messages
                rate = (n - last_n) / (now - last_t)
                last_n, last_t = n, now
                live.update(screen(rate))
                if pub_error:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        collector.stop()
        if broker is not None:
            broker.stop()
    ran = f"simulated {_span(clock.now() - start)} in {time.monotonic() - wall0:.0f} s of wall time"
    _summary(console, collector, demo_log, data, f"{ran} ({speed:g}x)")
    if pub_error:
        console.print(f"[red]simulator stopped: {pub_error[0]}[/red]")
    report, why = _write_report(data)
    if report is not None:
        console.print(f"report: [cyan]{report}[/cyan] (open it: xdg-open {report})")
        if why:
            console.print(f"  [yellow]written {why}[/yellow]")
    else:
        console.print(f"[yellow]no report: {why}[/yellow]")
    return 0


def _summary(console: Any, collector: Collector, demo_log: Any, data: Path, ran: str) -> None:
    from chargewatch.cli.demo_view import outcomes  # noqa: PLC0415

    stats = collector.pipeline.stats
    transitions = list(collector.recent_transitions)
    fired = sorted({t.alertname for t in transitions if t.state == "firing"})
    resolved = sorted({t.alertname for t in transitions if t.state == "resolved"})
    console.print(
        f"\n[bold]summary[/bold]: {stats.messages:,} messages, {stats.samples:,} samples, "
        f"{rejected(collector):,} rejected {collector.deadletter.counts or ''}"
    )
    console.print(f"  {ran}")
    console.print(f"  alerts fired: {', '.join(fired) or 'none'}")
    console.print(f"  alerts resolved: {', '.join(resolved) or 'none'}")
    for o in outcomes(demo_log.sent(), transitions):
        console.print(f"  remediation: {o.action} to {o.charger} for {o.alertname}: {o.result}")
    cdrs = collector.cdrs
    console.print(
        f"  sessions finished: {collector.sessions.records_written}, CDRs priced: {cdrs.issued}, "
        f"unpriced: {cdrs.unpriced}"
    )
    console.print(
        f"data kept in [cyan]{data}[/cyan]: fleet.yaml, truth.jsonl, meter.lp, rejected.jsonl, "
        "ledger.sqlite, demo.log (chargewatch sessions export / cdrs export / report)"
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="run broker, simulated fleet and collector with a live view")
    p.add_argument("--broker", type=_broker, help="use this MQTT broker instead of an embedded one")
    p.add_argument("--chargers", type=int, default=50)
    p.add_argument("--duration", type=float, help="wall seconds to run (default: until Ctrl-C)")
    p.add_argument(
        "--speed",
        type=float,
        default=60.0,
        help="simulated seconds per wall second, for the fleet, the rules and the "
        "collector alike (default 60: an hour in a minute)",
    )
    p.add_argument(
        "--interval", type=float, default=10.0, help="meter sample interval, simulated s"
    )
    p.add_argument(
        "--batch", type=int, default=3, help="meter samples per message (fewer messages)"
    )
    p.add_argument(
        "--arrival-rate",
        type=float,
        default=4.0,
        help="multiplier on session arrivals, so a short demo sees sessions",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--start",
        type=_start_time,
        help="simulated start, RFC 3339 (default: now); the story depends on the hour",
    )
    p.add_argument("--influx", help="InfluxDB URL (default: a local line-protocol file)")
    p.add_argument("--data-dir", default="chargewatch-demo", help="where everything is written")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the previous run's data (default: fresh)",
    )
    p.set_defaults(func=cmd_demo)


def _start_time(text: str) -> float:
    """``--start``: an RFC 3339 time (Z or an offset) as epoch seconds."""
    import argparse  # noqa: PLC0415 - cheap --help
    from datetime import datetime  # noqa: PLC0415

    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected RFC 3339, e.g. 2026-12-07T15:00:00Z"
        ) from None
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give the offset (Z or +01:00)")
    return float(int(at.timestamp()))
