"""``chargewatch simulate``: generate a seeded fleet, publish it and/or write a capture."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chargewatch.core.errors import ConfigError
    from chargewatch.simulator.fault_models import FaultSpec

# Nothing of the simulator is imported here: the parser is built at every
# ``chargewatch`` start, and even the fault and scenario vocabularies (for this
# command's help and option checks) cost a noticeable share of that. They are
# read when argparse first needs them; the generator (numpy, scipy) and the
# publisher (paho) when run() runs.
_EPILOG = """\
faults: {faults}
  --fault NAME@CHARGER[:CONNECTOR][@START+DURATION][,PARAM=VALUE...],
  e.g. meter_stuck@CP0003:1@2h+30m or meter_mismatch@CP0002@1h+20m,factor=0.3
  (START is relative to the simulation start; without it the simulator picks a time.
  PARAMs: see the fault classes in chargewatch/simulator/fault_models.py.)
scenarios (hard normal cases, labelled in the truth): {scenarios}
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Fills the fault and scenario names into the epilog when help is printed."""

    def add_text(self, text: str | None) -> None:
        if text == _EPILOG:
            from chargewatch.simulator.fault_models import FAULTS  # noqa: PLC0415 - see above
            from chargewatch.simulator.scenarios import SCENARIOS  # noqa: PLC0415

            text = text.format(faults=", ".join(FAULTS), scenarios=", ".join(SCENARIOS))
        super().add_text(text)


class _ScenarioNames:
    """``--scenario`` choices, sorted, read from the simulator when first asked."""

    def _names(self) -> list[str]:
        from chargewatch.simulator.scenarios import SCENARIOS  # noqa: PLC0415 - see above

        return sorted(SCENARIOS)

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate a fleet of chargers (MQTT, capture file, ground truth)",
        description="Seeded fleet simulator: native telemetry or OCPP 1.6-J frames, "
        "with injectable faults and a ground-truth file.",
        epilog=_EPILOG,
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--chargers", type=int, default=10)
    p.add_argument("--sites", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--interval", type=float, default=1.0, help="meter sample interval, s")
    p.add_argument(
        "--protocol", choices=["native", "ocpp1.6"], default=None, help="default: native"
    )
    p.add_argument("--batch", type=int, default=1, help="samples per meter message")
    p.add_argument("--duration", default="1h", help="simulated time, e.g. 3600, 90m, 1d")
    p.add_argument(
        "--start",
        default=None,
        help="simulation start: RFC 3339, epoch seconds or 'now' "
        "(default: now when publishing, else 2026-11-23T00:00:00Z)",
    )
    scenario = p.add_argument("--scenario", default="default")
    # Set after add_argument, which would read the names at once to check the metavar.
    scenario.choices = _ScenarioNames()
    p.add_argument("--fault", action="append", default=[], metavar="SPEC", type=_fault)
    p.add_argument("--faults", type=int, default=0, metavar="N", help="N random faults")
    p.add_argument("--heartbeat", type=float, default=60.0, help="heartbeat interval, s")
    p.add_argument("--speed", type=float, default=1.0, help="time acceleration; 0 = no pacing")
    p.add_argument("--broker", default=None, metavar="HOST:PORT")
    p.add_argument("--username", default=None)
    p.add_argument("--password", default=None)
    p.add_argument("--tls", action="store_true")
    p.add_argument(
        "--clients",
        choices=["auto", "per-charger", "single"],
        default="auto",
        help="MQTT clients: one per charger (with its last will), or one for all; "
        "auto = per charger up to 100 native chargers",
    )
    p.add_argument("--capture", default=None, metavar="FILE", help="write a capture ('-': stdout)")
    p.add_argument("--truth", default=None, metavar="FILE", help="write the ground truth (JSONL)")
    p.add_argument("--fleet-out", default=None, metavar="FILE", help="write fleet.yaml")
    p.set_defaults(func=run)


def _fault(text: str) -> FaultSpec:
    from chargewatch.simulator.fault_models import parse_fault  # noqa: PLC0415 - see the imports

    try:
        return parse_fault(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _start(text: str | None, live: bool) -> float:
    from chargewatch.simulator.scenarios import DEFAULT_START  # noqa: PLC0415 - see the imports

    if text is None:
        return float(int(time.time())) if live else DEFAULT_START
    if text == "now":
        return float(int(time.time()))
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise _usage(
            "--start", f"expected RFC 3339, epoch seconds or 'now', got {text!r}"
        ) from None


def run(args: argparse.Namespace) -> int:
    from chargewatch.cli.progress import track_simulation  # noqa: PLC0415 - see the imports
    from chargewatch.simulator.fault_models import parse_duration  # noqa: PLC0415
    from chargewatch.simulator.publish import publish  # noqa: PLC0415
    from chargewatch.simulator.scenarios import SimConfig  # noqa: PLC0415
    from chargewatch.simulator.simulation import Simulation, write_capture  # noqa: PLC0415

    if not (args.broker or args.capture or args.truth or args.fleet_out):
        print("chargewatch simulate: give --broker and/or --capture (or --truth/--fleet-out)",
              file=sys.stderr)  # fmt: skip
        return 2
    # Outside the try below: a bad --start is already a ConfigError (a ValueError),
    # which that handler would wrap a second time under "simulate".
    start = _start(args.start, live=bool(args.broker))
    try:
        cfg = SimConfig(
            chargers=args.chargers,
            sites=args.sites,
            seed=args.seed,
            start=start,
            duration=parse_duration(args.duration),
            interval=args.interval,
            batch=args.batch,
            heartbeat_interval=args.heartbeat,
            faults=tuple(args.fault),
            random_faults=args.faults,
        ).with_scenario(args.scenario)
        for f in args.fault:
            if f.start is not None and f.start >= cfg.duration:
                raise ValueError(
                    f"fault {f.name}@{f.charger} starts at {f.start:g} s, after the"
                    f" simulation's end ({cfg.duration:g} s)"
                )
        if args.protocol:  # an explicit protocol wins over the scenario's
            cfg = cfg.replace(protocol=args.protocol)
        sim = Simulation(cfg)
    except ValueError as exc:
        raise _usage("simulate", str(exc)) from None
    if args.fleet_out:
        sim.write_fleet(args.fleet_out)
    if args.truth:
        sim.write_truth(args.truth)
    if args.capture and not args.broker:
        t = time.monotonic()
        if args.capture == "-":
            n = write_capture(sys.stdout.buffer, sim.messages())
        else:
            # A bar on stderr when it is a terminal: a simulated day takes minutes.
            tracked = track_simulation(
                sim.messages(), cfg.start, cfg.end, f"simulate {args.capture}"
            )
            with open(args.capture, "wb") as fh:
                n = write_capture(fh, tracked)
        print(json.dumps({"messages": n, "seconds": round(time.monotonic() - t, 2)}),
              file=sys.stderr)  # fmt: skip
    if args.broker:
        host, _, port = args.broker.rpartition(":")
        if not host:
            host, port = port, "1883"
        per = {"auto": None, "per-charger": True, "single": False}[args.clients]
        if args.speed > 0 and args.speed != 1:
            # A collector on the wall clock would see this fleet's time run away from its own.
            print(f"simulated time runs {args.speed:g}x wall time; a collector follows it with "
                  "`chargewatch run --clock simulator`", file=sys.stderr)  # fmt: skip
        stats = publish(
            sim,
            host=host,
            port=int(port),
            username=args.username,
            password=args.password,
            tls=args.tls,
            speed=args.speed,
            per_charger_clients=per,
            capture=args.capture,
        )
        from dataclasses import asdict  # noqa: PLC0415 - see the imports

        print(json.dumps(asdict(stats)), file=sys.stderr)
    return 0


def _usage(option: str, message: str) -> ConfigError:
    from chargewatch.core.errors import ConfigError, ConfigProblem  # noqa: PLC0415 - see the imports

    return ConfigError([ConfigProblem("command line", option, message)])
