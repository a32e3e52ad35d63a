"""Private instances of the real services that integration tests and benchmarks use.

Each service runs from its Debian package's binary on a free loopback port with
a temporary data directory, and is stopped afterwards. ``scripts/test.sh``
installs the packages; when a binary is missing here, tests skip locally but
fail under ``CI=true`` (a missing service must never look like a pass).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson

__all__ = [
    "Alertmanager",
    "InfluxDB",
    "Mosquitto",
    "PostgreSQL",
    "Prometheus",
    "Service",
    "ServiceMissingError",
    "VictoriaMetrics",
    "free_port",
]


class ServiceMissingError(RuntimeError):
    """The service's binary is not installed."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _which(*names: str) -> str:
    for name in names:
        for d in ("", "/usr/sbin/", "/usr/bin/", "/usr/local/bin/", "/usr/local/sbin/"):
            p = shutil.which(d + name) if d else shutil.which(name)
            if p:
                return p
    raise ServiceMissingError(f"none of {names} is installed (run scripts/test.sh to install)")


class Service:
    """A child process with a private directory, started and stopped by tests."""

    name = "service"

    def __init__(self, workdir: Path | None = None) -> None:
        self.dir = Path(workdir or tempfile.mkdtemp(prefix=f"cw-{self.name}-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / f"{self.name}.log"
        #: Run the binary as this user (a service that refuses to run as root).
        self.user: str | None = None
        #: The signal that stops the service promptly.
        self.stop_signal = signal.SIGTERM

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> None:
        cmd = self.command()
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
            start_new_session=True,
            user=self.user,
            group=self.user,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, self.stop_signal)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def _http_ok(self, path: str) -> bool:
        try:
            r = httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=1.0)
        except httpx.HTTPError:
            return False
        return r.status_code < 500

    def __enter__(self) -> Service:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


class Mosquitto(Service):
    name = "mosquitto"

    def __init__(
        self, workdir: Path | None = None, extra_conf: str = "", persistence: bool = True
    ) -> None:
        super().__init__(workdir)
        self.extra_conf = extra_conf
        self.persistence = persistence
        self.binary = _which("mosquitto")

    def command(self) -> list[str]:
        conf = self.dir / "mosquitto.conf"
        (self.dir / "data").mkdir(exist_ok=True)
        body = self.extra_conf or "allow_anonymous true\n"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"persistence {'true' if self.persistence else 'false'}\n"
            f"persistence_location {self.dir}/data/\n"
            "autosave_interval 1\n"
            # Large enough queues that tests exercise the collector, not broker limits.
            "max_queued_messages 1000000\nmax_inflight_messages 1000\n"
            "log_dest stdout\nlog_type error\nlog_type warning\n"
            # Started as root (CI), mosquitto would drop to its own user and then
            # fail to read the private temp directory the test created.
            + ("user root\n" if os.geteuid() == 0 else "")
            + body
        )
        return [self.binary, "-c", str(conf)]

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False


class InfluxDB(Service):
    """InfluxDB 1.x (Debian's 1.6): ``/write`` and InfluxQL ``/query``."""

    name = "influxdb"

    def __init__(self, workdir: Path | None = None) -> None:
        super().__init__(workdir)
        self.binary = _which("influxd")
        self.rpc_port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        d = self.dir
        conf = d / "influxdb.conf"
        conf.write_text(
            f'reporting-disabled = true\nbind-address = "127.0.0.1:{self.rpc_port}"\n'
            f'[meta]\n  dir = "{d}/meta"\n'
            f'[data]\n  dir = "{d}/data"\n  wal-dir = "{d}/wal"\n  query-log-enabled = false\n'
            f"  max-values-per-tag = 0\n"
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            "  max-body-size = 0\n"
            "[monitor]\n  store-enabled = false\n"
            "[continuous_queries]\n  enabled = false\n"
        )
        return [self.binary, "-config", str(conf)]

    def ready(self) -> bool:
        return self._http_ok("/ping")

    def query(self, q: str, db: str = "") -> list[dict[str, object]]:
        """Run InfluxQL; return the series of the first statement (empty when none)."""
        r = httpx.post(f"{self.url}/query", params={"q": q, "db": db, "epoch": "ms"}, timeout=30)
        r.raise_for_status()
        result = r.json()["results"][0]
        if "error" in result:
            raise RuntimeError(result["error"])
        return list(result.get("series", []))

    def create_db(self, db: str) -> None:
        self.query(f'CREATE DATABASE "{db}"')


class VictoriaMetrics(Service):
    """VictoriaMetrics: InfluxDB line protocol on ``/api/v2/write``, read via ``/api/v1/export``."""

    name = "victoria-metrics"

    def __init__(self, workdir: Path | None = None) -> None:
        super().__init__(workdir)
        self.binary = _which("victoria-metrics")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            self.binary,
            f"-storageDataPath={self.dir}/data",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            "-retentionPeriod=100y",
            "-search.disableCache",
            "-loggerLevel=ERROR",
        ]

    def ready(self) -> bool:
        return self._http_ok("/health")

    def flush(self) -> None:
        # Make just-written samples visible to queries without waiting for the
        # background flush (VictoriaMetrics' /internal/force_flush).
        httpx.get(f"{self.url}/internal/force_flush", timeout=10)

    def export(self, match: str) -> list[dict[str, object]]:
        self.flush()
        r = httpx.post(f"{self.url}/api/v1/export", data={"match[]": match}, timeout=30)
        r.raise_for_status()
        return [orjson.loads(line) for line in r.content.splitlines() if line.strip()]


class Alertmanager(Service):
    name = "alertmanager"

    def __init__(self, workdir: Path | None = None, config: str = "") -> None:
        super().__init__(workdir)
        self.binary = _which("prometheus-alertmanager", "alertmanager")
        self.config = config or (
            "route:\n  receiver: default\n  group_wait: 0s\n  group_interval: 1s\n"
            "  repeat_interval: 1h\nreceivers:\n  - name: default\n"
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        conf = self.dir / "alertmanager.yml"
        conf.write_text(self.config)
        return [
            self.binary,
            f"--config.file={conf}",
            f"--storage.path={self.dir}/data",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]

    def ready(self) -> bool:
        try:
            r = httpx.get(f"{self.url}/-/ready", timeout=1.0)
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    def alerts(self, **params: str) -> list[dict[str, object]]:
        r = httpx.get(f"{self.url}/api/v2/alerts", params=params, timeout=10)
        r.raise_for_status()
        return list(r.json())


class Prometheus(Service):
    """Prometheus 2.x (Debian's ``prometheus``): ``config`` is prometheus.yml's text with
    ``{rules_dir}`` and ``{port}`` filled in here; ``rules`` maps file names to rule files."""

    name = "prometheus"

    def __init__(
        self, workdir: Path | None = None, config: str = "", rules: dict[str, str] | None = None
    ) -> None:
        super().__init__(workdir)
        self.binary = _which("prometheus")
        self.config = config or "global:\n  scrape_interval: 1s\n"
        self.rules = rules or {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        rules_dir = self.dir / "rules"
        rules_dir.mkdir(exist_ok=True)
        for name, text in self.rules.items():
            (rules_dir / name).write_text(text)
        conf = self.dir / "prometheus.yml"
        conf.write_text(self.config.replace("{rules_dir}", str(rules_dir)).replace(
            "{port}", str(self.port)
        ))  # fmt: skip
        return [
            self.binary,
            f"--config.file={conf}",
            f"--storage.tsdb.path={self.dir}/data",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, expr: str) -> list[dict[str, object]]:
        """An instant query's result vector (``[{"metric": {...}, "value": [t, "v"]}]``)."""
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        r.raise_for_status()
        return list(r.json()["data"]["result"])

    def alerts(self) -> list[dict[str, object]]:
        """Pending and firing alerts of the loaded rules (``/api/v1/alerts``)."""
        r = httpx.get(f"{self.url}/api/v1/alerts", timeout=10)
        r.raise_for_status()
        return list(r.json()["data"]["alerts"])

    def targets(self) -> list[dict[str, object]]:
        r = httpx.get(f"{self.url}/api/v1/targets", timeout=10)
        r.raise_for_status()
        return list(r.json()["data"]["activeTargets"])


def _pg_bin(name: str) -> str:
    """A PostgreSQL server binary: Debian keeps them in /usr/lib/postgresql/N/bin."""
    found = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    return found[-1] if found else _which(name)


class PostgreSQL(Service):
    """A private PostgreSQL cluster (``initdb`` in a temporary directory, loopback only).

    PostgreSQL refuses to run as root; under root (CI) the cluster belongs to
    Debian's ``postgres`` user. Authentication is ``trust`` on loopback: this is
    a throwaway test cluster.
    """

    name = "postgresql"
    superuser = "chargewatch"

    def __init__(self, workdir: Path | None = None) -> None:
        super().__init__(workdir)
        self.initdb = _pg_bin("initdb")
        self.binary = _pg_bin("postgres")
        self.stop_signal = signal.SIGINT  # "fast" shutdown: does not wait for clients
        if os.geteuid() == 0:
            self.user = "postgres"
            try:
                pw = pwd.getpwnam(self.user)
            except KeyError as exc:
                raise ServiceMissingError("user 'postgres' missing (install postgresql)") from exc
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.data = self.dir / "data"

    @property
    def url(self) -> str:
        return self.dsn("postgres")

    def dsn(self, db: str) -> str:
        return f"postgresql://{self.superuser}@127.0.0.1:{self.port}/{db}"

    def command(self) -> list[str]:
        if not (self.data / "PG_VERSION").exists():
            subprocess.run(
                [self.initdb, "-D", str(self.data), "-U", self.superuser, "--auth=trust",
                 "-E", "UTF8", "--no-locale", "--no-sync"],
                check=True, capture_output=True, user=self.user, group=self.user,
            )  # fmt: skip
        return [
            self.binary, "-D", str(self.data), "-p", str(self.port), "-k", str(self.dir),
            "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200",
            # A throwaway cluster: durability against power loss is not under test.
            "-c", "fsync=off", "-c", "full_page_writes=off",
        ]  # fmt: skip

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
        except OSError:
            return False
        return self._sql("postgres", "SELECT 1", check=False) == 0

    def _sql(self, db: str, sql: str, check: bool = True) -> int:
        psql = _pg_bin("psql")
        r = subprocess.run(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.dsn(db), "-c", sql],
            capture_output=True,
            check=False,
        )
        if check and r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr.decode(errors='replace')}")
        return r.returncode

    def create_db(self, db: str) -> str:
        """Create database ``db``; return its URL."""
        self._sql("postgres", f'CREATE DATABASE "{db}"')
        return self.dsn(db)

    def drop_db(self, db: str) -> None:
        self._sql("postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


@contextlib.contextmanager
def running(service: Service) -> Iterator[Service]:
    service.start()
    try:
        yield service
    finally:
        service.cleanup()
