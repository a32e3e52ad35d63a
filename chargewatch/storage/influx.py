"""InfluxDB writer: batched, gzip-compressed line protocol over HTTP, through a durable spool.

Why not influxdb-client: it speaks only ``/api/v2`` (so not InfluxDB < 1.8),
its Point serialisation measured ~7x slower than preformatted lines, and it has
no durable buffer for outages (docs/architecture.md).

Endpoints: ``/write`` (InfluxDB 1.x, and 2.x/3.x v1 compatibility: db, rp,
user/password as HTTP basic auth) or ``/api/v2/write`` (1.8+, 2.x, 3.x,
VictoriaMetrics: org, bucket, token).

Delivery: lines are cut into chunks of ``batch_lines``, gzip-compressed and put
in the spool; one sender thread posts chunks oldest first. 429 and 5xx (and
connection failures) are retried with exponential backoff, honouring
Retry-After; 413 splits the chunk; other 4xx are data or auth errors: data
errors (400) are logged with the offending line and the chunk is set aside in
``rejected/`` (bounded) instead of being retried forever; auth and missing
database errors (401, 403, 404) are retried, because the data is not at fault.
"""

from __future__ import annotations

__all__ = ["InfluxConfig", "InfluxWriter", "WriteError"]

import email.utils
import gzip
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from chargewatch.core import metrics
from chargewatch.storage.health import StorageHealth, StorageUnavailableError, guarded
from chargewatch.storage.lineproto import PRECISION
from chargewatch.storage.spool import Spool

log = logging.getLogger(__name__)


class WriteError(RuntimeError):
    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(f"HTTP {status}: {message}")


@dataclass(frozen=True)
class InfluxConfig:
    url: str
    api: Literal["v1", "v2"] = "v1"
    database: str = "chargewatch"  # v1
    retention_policy: str = ""  # v1
    username: str = ""  # v1
    password: str = ""  # v1
    org: str = ""  # v2
    bucket: str = "chargewatch"  # v2
    token: str = ""  # v2
    batch_lines: int = 5000
    flush_interval_s: float = 1.0
    gzip: bool = True
    timeout_s: float = 10.0
    max_backoff_s: float = 30.0
    spool_max_bytes: int = 1 << 30
    create_database: bool = True  # v1: CREATE DATABASE at start (idempotent)
    # v1: the retention policy of the per-minute rollups and the status, alert
    # and session series ("" = the same as the raw meter series).
    rollup_retention_policy: str = ""
    # v1: how long rollups are kept when their policy has to be created.
    rollup_retention_duration: str = "730d"
    # v1: the duration a missing ``retention_policy`` is created with at start
    # ("" = never create it: a missing policy is then a configuration error).
    create_retention_duration: str = ""

    def __repr__(self) -> str:  # never print secrets
        return f"InfluxConfig(url={self.url!r}, api={self.api!r})"


class InfluxWriter:
    """Accepts lines from the pipeline; delivers them in order from a background thread."""

    def __init__(
        self, config: InfluxConfig, spool_dir: Path, *, health: StorageHealth | None = None
    ) -> None:
        if config.batch_lines < 1:
            raise ValueError("batch_lines must be >= 1")
        self.config = config
        # With a full disk, _spool waits (holding the buffer lock) until the chunk
        # is on disk: the pipeline's next write() waits too, before its batch is
        # acknowledged, so no more than the documented buffer is ever at risk.
        self.health = health
        self.spool = Spool(spool_dir, max_bytes=config.spool_max_bytes)
        self._rejected_dir = spool_dir / "rejected"
        self._buf: list[str] = []
        self._buf_since = time.monotonic()
        self._buf_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flusher: threading.Thread | None = None
        self.lines_written = 0
        self.last_error = ""
        # The commonest reasons as series from the start: a healthy collector's
        # write-error panel and rate() read 0, not "no data" (status codes
        # appear with their first error).
        for reason in ("connection", "config"):
            metrics.WRITE_ERRORS.labels(reason=reason)
        # Set while the target database or retention policy is missing: a
        # configuration error, re-checked at the longest backoff, not hammered.
        self.config_error = ""
        auth: httpx.Auth | None = None
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if config.api == "v1":
            if config.username:
                auth = httpx.BasicAuth(config.username, config.password)
            params = {"db": config.database, "precision": PRECISION}
            if config.retention_policy:
                params["rp"] = config.retention_policy
            self._path = "/write"
        else:
            if config.token:
                headers["Authorization"] = f"Token {config.token}"
            params = {"bucket": config.bucket, "precision": PRECISION}
            if config.org:
                params["org"] = config.org
            self._path = "/api/v2/write"
        if config.gzip:
            headers["Content-Encoding"] = "gzip"
        self._params = params
        self._client = httpx.Client(
            base_url=config.url.rstrip("/"),
            auth=auth,
            headers=headers,
            timeout=config.timeout_s,
        )

    # -- producer side (pipeline thread) -------------------------------------------

    def write(self, lines: list[str]) -> None:
        """Queue lines; full chunks go to the spool at once. Never blocks on the network."""
        if not lines:
            return
        size = self.config.batch_lines
        with self._buf_lock:
            if not self._buf:
                self._buf_since = time.monotonic()
            self._buf.extend(lines)
            while len(self._buf) >= size:
                chunk, self._buf = self._buf[:size], self._buf[size:]
                self._spool(chunk)

    def flush(self) -> None:
        """Spool whatever is buffered (called on the flush interval and at shutdown)."""
        with self._buf_lock:
            if self._buf:
                chunk, self._buf = self._buf, []
                self._spool(chunk)

    def _spool(self, chunk: list[str]) -> None:
        body = ("\n".join(chunk) + "\n").encode()
        if self.config.gzip:
            body = gzip.compress(body, compresslevel=1)  # speed over ratio: CPU is scarcer
        guarded(self.health, "spool", lambda: self.spool.put(body))
        metrics.SPOOL_BYTES.set(self.spool.bytes)

    # -- sender thread ----------------------------------------------------------

    def start(self) -> None:
        if self.config.api == "v1" and self.config.create_database:
            self._create_database()
        self.ensure_schema()
        self._thread = threading.Thread(
            target=self._send_loop, name="collector.influx_send", daemon=True
        )
        self._thread.start()
        self._flusher = threading.Thread(
            target=self._flush_loop, name="collector.influx_flush", daemon=True
        )
        self._flusher.start()

    def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Flush, give the sender ``drain_timeout_s`` to empty the spool, then stop.

        Whatever is still spooled stays on disk and is sent after the next start.
        """
        try:
            self.flush()
        except StorageUnavailableError as exc:  # stopping with the disk still full
            log.error("InfluxDB lines not spooled at stop (never acknowledged): %s", exc)
        if self._thread is not None:
            self.spool.wait_empty(drain_timeout_s)
        self._stop.set()
        for t in (self._thread, self._flusher):
            if t is not None:
                t.join(5)
        self._client.close()

    def drain(self, timeout_s: float) -> bool:
        """Flush and wait until everything spooled was delivered (tests, replay)."""
        self.flush()
        return self.spool.wait_empty(timeout_s)

    def _create_database(self) -> None:
        db = self.config.database.replace('"', '\\"')
        try:
            r = self._client.post("/query", params={"q": f'CREATE DATABASE "{db}"'})
            if r.status_code >= 400:
                log.warning(
                    "CREATE DATABASE %s failed: HTTP %d %s", db, r.status_code, r.text[:200]
                )
        except httpx.HTTPError as exc:
            log.warning("CREATE DATABASE %s failed: %s (will retry writes)", db, exc)

    def ensure_schema(self) -> None:
        """v1: create the retention policy this writer writes to, if asked to and missing.

        Sets :attr:`config_error` (the reason and the command that fixes it) when
        the policy is missing and cannot be created; clears it once it exists.
        """
        cfg = self.config
        if cfg.api != "v1" or not cfg.retention_policy:
            return
        try:
            existing = self._retention_policies()
        except (httpx.HTTPError, WriteError) as exc:
            log.warning("cannot list InfluxDB retention policies yet: %s", exc)
            return
        if existing is None or cfg.retention_policy in existing:
            self._set_config_error("")
            return
        if cfg.create_retention_duration:
            q = _create_rp(cfg.database, cfg.retention_policy, cfg.create_retention_duration)
            try:
                r = self._client.post("/query", params={"q": q})
                if r.status_code < 400 and '"error"' not in r.text:
                    log.info("created InfluxDB retention policy: %s", q)
                    self._set_config_error("")
                    return
                why = f"HTTP {r.status_code} {r.text[:200]}"
            except httpx.HTTPError as exc:
                why = str(exc)
            log.error("could not create the retention policy (%s)", why)
        fix = _create_rp(cfg.database, cfg.retention_policy, cfg.create_retention_duration or "30d")
        self._set_config_error(
            f"retention policy {cfg.retention_policy!r} does not exist on database "
            f"{cfg.database!r}; create it with: {fix}"
        )

    def _retention_policies(self) -> set[str] | None:
        """The database's retention policies; None when the database is missing."""
        db = self.config.database.replace('"', '\\"')
        r = self._client.get("/query", params={"q": f'SHOW RETENTION POLICIES ON "{db}"'})
        if r.status_code >= 400:
            raise WriteError(r.status_code, r.text[:200])
        result = (r.json().get("results") or [{}])[0]
        if "error" in result:  # "database not found": CREATE DATABASE failed or is off
            self._set_config_error(f"InfluxDB: {result['error']}")
            return None
        series = result.get("series") or [{}]
        return {row[0] for row in series[0].get("values") or []}

    def _set_config_error(self, text: str) -> None:
        if text and text != self.config_error:
            log.error("InfluxDB writer for %s: %s", self._target(), text)
        elif not text and self.config_error:
            log.warning("InfluxDB writer for %s: configuration fixed", self._target())
        self.config_error = text
        metrics.INFLUX_MISCONFIGURED.labels(target=self._target()).set(1 if text else 0)

    def _target(self) -> str:
        rp = self.config.retention_policy
        return f"{self.config.database}.{rp}" if rp else self.config.database

    def _flush_loop(self) -> None:
        interval = self.config.flush_interval_s
        while not self._stop.wait(interval / 2):
            if self._buf and time.monotonic() - self._buf_since >= interval:
                try:
                    self.flush()
                except StorageUnavailableError:
                    return  # stopping while the disk is full: stop() reports it

    def _send_loop(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            item = self.spool.peek(timeout=0.5)
            if item is None:
                continue
            seq, body = item
            try:
                self._post(body)
            except WriteError as exc:
                self.last_error = str(exc)
                if _missing_target(exc):
                    metrics.WRITE_ERRORS.labels(reason="config").inc()
                    self.ensure_schema()
                    if not self.config_error:
                        self._set_config_error(f"InfluxDB refused the write: {exc}")
                    self._stop.wait(self.config.max_backoff_s)
                    continue
                if exc.status == 400:
                    # Bad data, set aside and counted: the writer itself is
                    # healthy, so it does not keep /readyz false.
                    self._set_aside(seq, body, exc)
                    self.last_error = ""
                    continue
                if exc.status == 413:
                    self._split(seq, body)
                    continue
                delay = exc.retry_after if exc.retry_after is not None else backoff
                metrics.WRITE_ERRORS.labels(reason=str(exc.status)).inc()
                log.warning("InfluxDB write failed (%s); retrying in %.1fs", exc, delay)
                self._stop.wait(min(delay, self.config.max_backoff_s))
                backoff = min(backoff * 2, self.config.max_backoff_s)
                continue
            except httpx.HTTPError as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                metrics.WRITE_ERRORS.labels(reason="connection").inc()
                log.warning("InfluxDB unreachable (%s); retrying in %.1fs", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.config.max_backoff_s)
                continue
            backoff = 0.5
            self.last_error = ""
            if self.config_error:
                self._set_config_error("")
            self.spool.pop(seq)
            metrics.SPOOL_BYTES.set(self.spool.bytes)

    def _post(self, body: bytes) -> None:
        t0 = time.perf_counter()
        r = self._client.post(self._path, params=self._params, content=body)
        metrics.WRITE_SECONDS.observe(time.perf_counter() - t0)
        if r.status_code in (200, 204):
            n = body.count(b"\n") if not self.config.gzip else gzip.decompress(body).count(b"\n")
            self.lines_written += n
            metrics.LINES_WRITTEN.inc(n)
            return
        raise WriteError(r.status_code, r.text[:2000], _retry_after(r))

    def _set_aside(self, seq: int, body: bytes, exc: WriteError) -> None:
        # InfluxDB names the offending line in its error text ("unable to parse '...'")
        # and, on a partial write, has stored the chunk's good lines already.
        log.error("InfluxDB rejected data (not retried): %s", exc)
        metrics.WRITE_ERRORS.labels(reason="400").inc()
        try:
            self._rejected_dir.mkdir(exist_ok=True)
            kept = sorted(self._rejected_dir.glob("*.lp.gz"))
            for old in kept[: max(0, len(kept) - 99)]:  # keep the last 100 for inspection
                old.unlink(missing_ok=True)
            (self._rejected_dir / f"{seq:016d}.lp.gz").write_bytes(body)
        except OSError as e:  # a copy for inspection only: not worth stopping the sender
            (self._rejected_dir / f"{seq:016d}.lp.gz").unlink(missing_ok=True)
            log.error("could not set aside the rejected chunk %d: %s", seq, e)
        self.spool.pop(seq)

    def _split(self, seq: int, body: bytes) -> None:
        raw = gzip.decompress(body) if self.config.gzip else body
        lines = raw.decode().splitlines()
        if len(lines) <= 1:
            self._set_aside(seq, body, WriteError(413, "a single line is too large"))
            return
        log.warning("InfluxDB: request too large; splitting a chunk of %d lines", len(lines))
        # Re-queue the halves at the back (order across chunks is not a contract
        # of line protocol: each point carries its own timestamp), and only then
        # drop the original, so the spool is never momentarily empty.
        half = len(lines) // 2
        for part in (lines[:half], lines[half:]):
            self._spool(part)
        self.spool.pop(seq)


def _create_rp(database: str, rp: str, duration: str) -> str:
    return f'CREATE RETENTION POLICY "{rp}" ON "{database}" DURATION {duration} REPLICATION 1'


def _missing_target(exc: WriteError) -> bool:
    """InfluxDB 1.x answers a write to a missing database (404) or retention policy
    (500 "retention policy not found") this way: retrying will not help."""
    text = str(exc).lower()
    return exc.status in (404, 500) and (
        "retention policy not found" in text or "database not found" in text
    )


def _retry_after(r: httpx.Response) -> float | None:
    value = r.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
