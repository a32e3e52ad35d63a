"""The bridge under failure: CSMS restart, broker restart, chargers dropping, bad handshakes."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from pathlib import Path

import orjson
import pytest
from ocpp.v16 import call
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chargewatch.bridge import metrics
from chargewatch.bridge.settings import TlsFiles
from chargewatch.ingest.decode_native import NativeDecoder
from chargewatch.ingest.topics import TopicRouter
from chargewatch.model.decoding import DecodeSink
from chargewatch.model.events import OnlineEvent
from chargewatch.model.fleet import ConnectorIndex
from tests.bridge.kit import (
    Csms,
    Recorder,
    bridge_config,
    charger,
    make_pki,
    now_iso,
    running,
    url_of,
)
from tests.services import Mosquitto

pytestmark = pytest.mark.integration


def _value(counter: object, **labels: str) -> float:
    child = counter.labels(**labels) if labels else counter
    return float(child._value.get())


def test_csms_restart_closes_the_charger_which_reconnects(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async def main() -> None:
        csms = Csms()
        await csms.start()
        rec = Recorder(mosquitto.port, client_id="rec-csms-restart")
        async with running(bridge_config(csms.url, mosquitto.port, tmp_path / "spool")) as b:
            st = await charger(url_of(b), "CP-C")
            await st.cp.call(call.BootNotification("ACME", "Fast-1"))
            errors = _value(metrics.UPSTREAM_ERRORS, reason="closed")
            await csms.stop()
            # The charger's socket is closed at once, so it queues its messages.
            await asyncio.wait_for(st.ws.wait_closed(), 5)
            await st.close()
            assert _value(metrics.UPSTREAM_ERRORS, reason="closed") == errors + 1
            flags = await rec.wait("ev/CP-C/online", 2)
            assert orjson.loads(flags[-1]) == {"online": False}
            # While the CSMS is down a charger's handshake is refused (502).
            with pytest.raises(InvalidStatus) as refused:
                await charger(url_of(b), "CP-C")
            assert refused.value.response.status_code == 502
            await csms.start()  # the same port
            st2 = await charger(url_of(b), "CP-C")
            boot = await st2.cp.call(call.BootNotification("ACME", "Fast-1"))
            assert boot.status == "Accepted"
            assert csms.connections == 2
            flags = await rec.wait("ev/CP-C/online", 3)
            assert orjson.loads(flags[-1]) == {"online": True}
            await st2.close()
        await csms.stop()
        rec.close()

    asyncio.run(main())


async def _distinct(rec: Recorder, topic: str, want: list[str]) -> list[str]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not set(want) <= set(rec.payloads(topic)):
        await asyncio.sleep(0.05)
    return list(dict.fromkeys(rec.payloads(topic)))


def test_broker_restart_mid_transaction_loses_nothing(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()

    async def main() -> None:
        csms = Csms()
        await csms.start()
        # A persistent session: the broker keeps what is published for the
        # recorder while it reconnects after the restart.
        rec = Recorder(broker.port, client_id="rec-broker-restart", persistent=True)
        async with running(bridge_config(csms.url, broker.port, tmp_path / "spool")) as b:
            st = await charger(url_of(b), "CP-B")
            cp = st.cp
            await cp.call(call.BootNotification("ACME", "Fast-1"))
            started = await cp.call(call.StartTransaction(1, "TAG-9", 0, now_iso()))
            await asyncio.to_thread(broker.stop)
            await asyncio.sleep(0.3)
            for i in range(1, 21):  # charger <-> CSMS is unaffected while the broker is away
                sample = {"value": str(100 * i), "measurand": "Energy.Active.Import.Register"}
                mv = call.MeterValues(
                    1,
                    [{"timestamp": now_iso(), "sampledValue": [sample]}],
                    transaction_id=started.transaction_id,
                )
                await asyncio.wait_for(cp.call(mv), 2)
            assert len(csms.frames("CP-B", "in")) == 22
            assert b.mirror.spool.bytes > 0 and not b.mirror.connected.is_set()
            await asyncio.to_thread(broker.start)
            await cp.call(call.StopTransaction(2000, now_iso(), started.transaction_id))
            want_cp, want_csms = csms.frames("CP-B", "in"), csms.frames("CP-B", "out")
            # QoS 1 is at least once: a frame in flight at the restart may come
            # twice (chargewatch's decoder drops exact repeats); none is missing
            # and the order is the wire's.
            got_cp = await _distinct(rec, "ocpp/1.6/CP-B/cp", want_cp)
            got_csms = await _distinct(rec, "ocpp/1.6/CP-B/csms", want_csms)
            assert (got_cp, got_csms) == (want_cp, want_csms)
            assert _value(metrics.MIRROR_LOST, reason="queue_full") == 0
            assert _value(metrics.MIRROR_LOST, reason="spool_full") == 0
            assert b.mirror.spool.bytes == 0
            await st.close()
        await csms.stop()
        rec.close()

    try:
        asyncio.run(main())
    finally:
        broker.cleanup()


def test_charger_dropping_publishes_retained_offline_at_once(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async def main() -> None:
        csms = Csms()
        await csms.start()
        rec = Recorder(mosquitto.port, client_id="rec-drop")
        async with running(bridge_config(csms.url, mosquitto.port, tmp_path / "spool")) as b:
            st = await charger(url_of(b), "CP-D")
            await st.cp.call(call.BootNotification("ACME", "Fast-1"))
            await rec.wait("ev/CP-D/online", 1)
            # No close frame: the TCP connection just goes (power cut, modem).
            st.ws.transport.abort()
            t0 = time.monotonic()
            flags = await rec.wait("ev/CP-D/online", 2, timeout=5)
            assert orjson.loads(flags[-1]) == {"online": False}
            assert time.monotonic() - t0 < 2.0
            # The upstream closes too: the CSMS sees its charger gone.
            await asyncio.sleep(0.2)
            assert csms.cps["CP-D"]._connection.ws.close_code is not None
        # Retained: a collector starting later still learns it; chargewatch reads it as such.
        late = Recorder(mosquitto.port, client_id="rec-drop-late")
        retained = await late.wait("ev/CP-D/online", 1)
        assert [orjson.loads(p) for p in retained] == [{"online": False}]
        assert all(r for _, t, _, r in late.messages if t == "ev/CP-D/online")
        sink = DecodeSink()
        topic = "ev/CP-D/online"
        NativeDecoder(ConnectorIndex()).decode(
            TopicRouter().route(topic), topic, retained[0].encode(), time.time(), sink
        )
        assert [(e.charger, e.online) for e in sink.events if isinstance(e, OnlineEvent)] == [
            ("CP-D", False)
        ]
        await csms.stop()
        rec.close()
        late.close()

    asyncio.run(main())


def test_a_charger_reconnecting_replaces_its_old_connection(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async def main() -> None:
        csms = Csms()
        await csms.start()
        rec = Recorder(mosquitto.port, client_id="rec-replace")
        async with running(bridge_config(csms.url, mosquitto.port, tmp_path / "spool")) as b:
            old = await charger(url_of(b), "CP-2X")
            new = await charger(url_of(b), "CP-2X")
            await asyncio.wait_for(old.ws.wait_closed(), 5)
            assert old.ws.close_code == 1001
            boot = await new.cp.call(call.BootNotification("ACME", "Fast-1"))
            assert boot.status == "Accepted"
            # The old socket's end did not say offline over the new one's online.
            await asyncio.sleep(0.3)
            flags = [orjson.loads(p) for p in rec.payloads("ev/CP-2X/online")]
            assert flags == [{"online": True}, {"online": True}]
            await old.close()
            await new.close()
        await csms.stop()
        rec.close()

    asyncio.run(main())


def test_basic_auth_passed_through_and_never_logged(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def main() -> None:
        csms = Csms(basic=("CP-A", "s3cret-Pa55"))
        await csms.start()
        async with running(bridge_config(csms.url, mosquitto.port, tmp_path / "spool")) as b:
            with pytest.raises(InvalidStatus) as wrong:
                await charger(url_of(b), "CP-A", auth=("CP-A", "guess"))
            assert wrong.value.response.status_code == 401
            assert wrong.value.response.headers["WWW-Authenticate"] == 'Basic realm="csms"'
            st = await charger(url_of(b), "CP-A", auth=("CP-A", "s3cret-Pa55"))
            boot = await st.cp.call(call.BootNotification("ACME", "Fast-1"))
            assert boot.status == "Accepted"
            assert csms.auth_seen[-1].startswith("Basic ")
            await st.close()
        await csms.stop()

    asyncio.run(main())
    # The bridge's records (the test's own CSMS and charger log theirs in full).
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("chargewatch"))
    assert "Authorization" in text  # the handshake was logged at DEBUG ...
    assert "s3cret" not in text and "czNjcmV0" not in text  # ... without the credentials
    assert "Q1AtQTpzM2NyZXQtUGE1NQ" not in text and "Q1AtQTpndWVzcw" not in text


def test_wrong_path_or_subprotocol_refused_before_any_upstream(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async def main() -> None:
        csms = Csms()
        await csms.start()
        async with running(bridge_config(csms.url, mosquitto.port, tmp_path / "spool")) as b:
            base = f"ws://127.0.0.1:{b.port}"
            for path, proto, status in [
                ("/somewhere/CP-P", "ocpp1.6", 404),
                ("/ocpp/", "ocpp1.6", 404),
                ("/ocpp/CP P", "ocpp1.6", 404),
                ("/ocpp/CP-P", "ocpp1.5", 400),
            ]:
                with pytest.raises(InvalidStatus) as refused:
                    await connect(base + path.replace(" ", "%20"), subprotocols=[proto], proxy=None)
                assert refused.value.response.status_code == status, path
            assert csms.connections == 0
            # OCPP 2.1 is negotiated too (this CSMS does not speak it: its refusal passes).
            with pytest.raises(InvalidStatus):
                await connect(base + "/ocpp/CP-P", subprotocols=["ocpp2.1"], proxy=None)
        await csms.stop()

    asyncio.run(main())


def test_oversized_frame_closes_with_1009_and_is_counted(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async def main() -> None:
        csms = Csms()
        await csms.start()
        cfg = bridge_config(csms.url, mosquitto.port, tmp_path / "spool", max_frame_bytes=4096)
        async with running(cfg) as b:
            ws = await connect(f"{url_of(b)}/CP-O", subprotocols=["ocpp1.6"], proxy=None)
            before = _value(metrics.OVERSIZED, direction="cp")
            big = orjson.dumps([2, "1", "DataTransfer", {"vendorId": "x", "data": "y" * 5000}])
            await ws.send(big.decode())
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1009
            assert _value(metrics.OVERSIZED, direction="cp") == before + 1
            assert csms.frames("CP-O", "in") == []  # never forwarded
        await csms.stop()

    asyncio.run(main())


def test_tls_both_ways_with_the_bridges_client_certificate(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Security profile 3 towards the CSMS (the bridge's client certificate), wss to chargers."""
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    csms_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    csms_tls.load_cert_chain(pki / "server.crt", pki / "server.key")
    csms_tls.load_verify_locations(pki / "ca.crt")
    csms_tls.verify_mode = ssl.CERT_REQUIRED  # no client certificate, no connection
    charger_tls = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    server = TlsFiles(str(pki / "server.crt"), str(pki / "server.key"))

    async def main() -> None:
        csms = Csms(basic=("CP-T", "pw"), tls=csms_tls)
        await csms.start()
        with_cert = TlsFiles(str(pki / "client.crt"), str(pki / "client.key"), str(pki / "ca.crt"))
        cfg = bridge_config(
            csms.url, mosquitto.port, tmp_path / "s1", server_tls=server, csms_tls=with_cert
        )
        async with running(cfg) as b:
            url = f"wss://127.0.0.1:{b.port}/ocpp"
            st = await charger(url, "CP-T", auth=("CP-T", "pw"), tls=charger_tls)
            boot = await st.cp.call(call.BootNotification("ACME", "Fast-1"))
            assert boot.status == "Accepted"
            await st.close()
        without = TlsFiles(ca_file=str(pki / "ca.crt"))
        cfg = bridge_config(
            csms.url, mosquitto.port, tmp_path / "s2", server_tls=server, csms_tls=without
        )
        async with running(cfg) as b:
            with pytest.raises(InvalidStatus) as refused:
                await charger(f"wss://127.0.0.1:{b.port}/ocpp", "CP-T", auth=("CP-T", "pw"),
                              tls=charger_tls)  # fmt: skip
            assert refused.value.response.status_code == 502
        assert csms.connections == 1
        await csms.stop()

    asyncio.run(main())
