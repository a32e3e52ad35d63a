"""``chargewatch bridge``: the OCPP-J WebSocket proxy beside a CSMS (chargewatch/bridge/)."""

from __future__ import annotations

import argparse
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chargewatch.bridge.settings import BridgeConfig


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def _csms(value: str) -> str:
    if not value.startswith(("ws://", "wss://")):
        raise argparse.ArgumentTypeError(f"expected a ws:// or wss:// URL, got {value!r}")
    return value


def _config(args: argparse.Namespace) -> BridgeConfig:
    """The config file's ``bridge`` section (or the defaults), then the flags over it."""
    from dataclasses import replace  # noqa: PLC0415 - not for every CLI start

    from chargewatch.config.bridge_settings import (  # noqa: PLC0415 - heavy imports
        load_bridge_config,
        parse_bridge_config,
    )
    from chargewatch.core.yamlsrc import load_yaml  # noqa: PLC0415

    if args.config:
        cfg = load_bridge_config(args.config)
    else:  # no file: the defaults, still with the environment's overrides
        cfg = parse_bridge_config(load_yaml("<defaults>", text="{}"))
    if args.listen:
        cfg = replace(cfg, listen=f"{args.listen[0]}:{args.listen[1]}")
    if args.csms:
        cfg = replace(cfg, csms_url=args.csms)
    if args.broker:
        cfg = replace(cfg, mqtt=replace(cfg.mqtt, host=args.broker[0], port=args.broker[1]))
    if not cfg.csms_url:
        raise SystemExit("chargewatch bridge: give --csms URL (or bridge.csms_url in --config)")
    return cfg


async def _serve(cfg: BridgeConfig) -> None:
    import asyncio  # noqa: PLC0415 - the CLI imports this module for every command
    import logging  # noqa: PLC0415 - likewise

    from chargewatch.bridge.service import Bridge, tune_process  # noqa: PLC0415 - heavy imports

    bridge = Bridge(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await bridge.start()
    tune_process()
    try:
        await stop.wait()
        logging.getLogger(__name__).info(
            "shutting down: closing chargers' sockets, flushing the mirror"
        )
    finally:
        await bridge.stop()


def cmd_bridge(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415

    asyncio.run(_serve(_config(args)))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bridge",
        help="OCPP-J WebSocket proxy beside a CSMS: frames to MQTT, commands to chargers",
    )
    p.add_argument("--listen", type=_host_port, help="HOST:PORT chargers connect to")
    p.add_argument("--csms", type=_csms, help="the CSMS's ws(s):// URL (<URL>/<chargerId>)")
    p.add_argument("--broker", type=_host_port, help="MQTT broker HOST:PORT")
    p.add_argument(
        "--config", help="YAML config with a bridge: section (env: CHARGEWATCH__BRIDGE__...)"
    )
    p.set_defaults(func=cmd_bridge)
