"""``chargewatch demo``: the whole system on one machine, with nothing to set up.

An embedded broker (amqtt) unless ``--broker`` is given, a simulated fleet of
~50 chargers with a few injected faults, and the collector, with a live table.
Everything it writes goes under one folder (``--data-dir``), which it names at
the start and at the end.
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chargewatch.cli.run import _broker

# The demo runs the whole system (collector, broker, simulator, rich): each
# function imports what it uses when it runs, so that building the parser at
# every ``chargewatch`` start does not import all of it.
if TYPE_CHECKING:
    from rich.table import Table

    from chargewatch.collector.service import Collector
    from chargewatch.model.fleet import ChargerSpec, Fleet
    from chargewatch.simulator import FaultSpec, Simulation


def _demo_faults(chargers: list[ChargerSpec]) -> tuple[FaultSpec, ...]:
    """A few faults early in the run, so the demo shows them within minutes."""
    from chargewatch.simulator.fault_models import FaultSpec  # noqa: PLC0415 - see the imports

    three_phase = [c.id for c in chargers if c.phases == 3]
    others = [c.id for c in chargers if c.id not in three_phase[:1]]
    picks = [
        ("GroundFailure", others[0:1], 5.0, 240.0),
        ("over_temperature", others[1:2], 20.0, 300.0),
        ("meter_stuck", others[2:3], 30.0, 400.0),
        ("charger_offline", others[3:4], 40.0, 400.0),
        ("phase_loss", three_phase[0:1], 60.0, 300.0),
    ]
    return tuple(
        FaultSpec(name, ids[0], 1, start=start, duration=dur)
        for name, ids, start, dur in picks
        if ids
    )


# The shipped example tariffs, by the kind of site the simulator plans.
_SITE_TARIFFS = {"residential": "flat-energy", "workplace": "time-of-use",
                 "public": "idle-fee", "highway": "dc-fast"}  # fmt: skip


def with_shipped_tariffs(fleet: Fleet) -> Fleet:
    """Give every simulated site a default tariff and DC chargers the DC tariff."""
    from chargewatch.model.fleet import Fleet  # noqa: PLC0415 - see the imports

    sites = {
        k: replace(s, tariff=_SITE_TARIFFS.get(s.name.split(" ")[0], "flat-energy"))
        for k, s in fleet.sites.items()
    }
    chargers = {
        k: replace(c, tariff="dc-fast") if c.is_dc else c for k, c in fleet.chargers.items()
    }
    return Fleet(sites, chargers, fleet.file)


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


def _table(collector: Collector, sim: Simulation, started: float, rates: dict[str, Any]) -> Table:
    from rich.table import Table  # noqa: PLC0415 - see the imports

    now = time.time()
    stats = collector.pipeline.stats
    view = collector.fleet_view(now)
    statuses = [c.get("status") for c in view["connectors"]]
    n = len(statuses)
    charging = statuses.count("Charging")
    faulted = statuses.count("Faulted")
    t = Table(title="chargewatch demo", show_header=True, header_style="bold")
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("running for", f"{now - started:.0f} s")
    t.add_row("messages/s", f"{rates.get('msg_per_s', 0.0):,.0f}")
    t.add_row("messages received", f"{stats.messages:,}")
    t.add_row("meter samples stored", f"{stats.samples:,}")
    t.add_row("rejected (dead-letter)", f"{stats.rejected:,}")
    t.add_row("chargers online", f"{view['chargers_online']} / {len(sim.plan.chargers)}")
    t.add_row("connectors charging", f"{charging} / {n}")
    t.add_row("connectors faulted", str(faulted))
    for key, value in collector.demo_rows():
        t.add_row(key, value)
    return t


def cmd_demo(args: argparse.Namespace) -> int:
    # See the imports at the top for why these are here.
    from rich.console import Console  # noqa: PLC0415
    from rich.live import Live  # noqa: PLC0415

    from chargewatch.collector.service import Collector  # noqa: PLC0415
    from chargewatch.config.settings import Config, HttpConfig  # noqa: PLC0415
    from chargewatch.core.resources import default_dir  # noqa: PLC0415
    from chargewatch.ingest.embedded_broker import EmbeddedBroker, free_port  # noqa: PLC0415
    from chargewatch.ingest.mqtt import MqttConfig  # noqa: PLC0415
    from chargewatch.simulator import SimConfig, Simulation  # noqa: PLC0415
    from chargewatch.simulator.publish import publish  # noqa: PLC0415
    from chargewatch.storage.influx import InfluxConfig  # noqa: PLC0415

    console = Console()
    data = Path(args.data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]chargewatch demo[/bold]: data in [cyan]{data}[/cyan]")

    broker: EmbeddedBroker | None = None
    if args.broker:
        host, port = args.broker
    else:
        host, port = "127.0.0.1", free_port(1883)
        broker = EmbeddedBroker(host, port)
        broker.start()
        console.print(f"embedded MQTT broker (amqtt) on {host}:{port}")

    start = time.time()
    sim_cfg = SimConfig(
        chargers=args.chargers,
        sites=3,
        seed=args.seed,
        start=start,
        # Beyond the demo's end: the publisher marks every charger offline when it finishes.
        duration=(args.duration + 120.0) if args.duration else 7 * 86400.0,
        interval=args.interval,
        arrival_rate=args.arrival_rate,
    )
    sim = Simulation(sim_cfg.replace(faults=_demo_faults(Simulation(sim_cfg).plan.chargers)))
    fleet = with_shipped_tariffs(sim.fleet())
    (data / "fleet.yaml").write_text(fleet_yaml(fleet))
    sim.write_truth(str(data / "truth.jsonl"))

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
    )
    collector = Collector(config, fleet=fleet)
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
            publish(sim, host=host, port=port, speed=args.speed, qos=1)
        except BaseException as exc:  # shown in the summary
            pub_error.append(exc)

    threading.Thread(target=run_publisher, name="demo.simulator", daemon=True).start()

    rates: dict[str, Any] = {}
    last_n, last_t = 0, time.time()
    try:
        with Live(
            _table(collector, sim, start, rates),
            console=console,
            refresh_per_second=2,
            transient=False,
        ) as live:
            while args.duration is None or time.time() - start < args.duration:
                time.sleep(1.0)
                now = time.time()
                n = collector.pipeline.stats.messages
                rates["msg_per_s"] = (n - last_n) / (now - last_t)
                last_n, last_t = n, now
                live.update(_table(collector, sim, start, rates))
                if pub_error:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        collector.stop()
        if broker is not None:
            broker.stop()
    stats = collector.pipeline.stats
    console.print(
        f"\n[bold]summary[/bold]: {stats.messages:,} messages, {stats.samples:,} samples, "
        f"{stats.rejected:,} rejected {dict(stats.rejected_by_reason) or ''}"
    )
    for key, value in collector.demo_rows():
        console.print(f"  {key}: {value}")
    if pub_error:
        console.print(f"[red]simulator stopped: {pub_error[0]}[/red]")
    console.print(
        f"data kept in [cyan]{data}[/cyan]: fleet.yaml, truth.jsonl, meter.lp, rejected.jsonl, "
        "ledger.sqlite (chargewatch sessions export / cdrs export / report --ledger)"
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="run broker, simulated fleet and collector with a live view")
    p.add_argument("--broker", type=_broker, help="use this MQTT broker instead of an embedded one")
    p.add_argument("--chargers", type=int, default=50)
    p.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    p.add_argument("--speed", type=float, default=1.0, help="simulation speed (x real time)")
    p.add_argument("--interval", type=float, default=2.0, help="meter sample interval, s")
    p.add_argument(
        "--arrival-rate",
        type=float,
        default=4.0,
        help="multiplier on session arrivals, so a short demo sees sessions",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--influx", help="InfluxDB URL (default: a local line-protocol file)")
    p.add_argument("--data-dir", default="chargewatch-demo", help="where everything is written")
    p.set_defaults(func=cmd_demo)
