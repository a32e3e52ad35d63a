"""The ``http``, ``limits``, ``ocpp``, ``alerting``, ``billing``, ``cluster`` and
``detectors`` sections and their types.

The section dataclasses are re-exported by :mod:`chargewatch.config.settings`,
where callers import them from.
"""

from __future__ import annotations

__all__ = [
    "AlertingConfig",
    "BillingConfig",
    "ClusterConfig",
    "HttpConfig",
    "LimitsConfig",
    "OcppConfig",
    "OperatorConfig",
    "read_alerting",
    "read_billing",
    "read_cluster",
    "read_detectors",
    "read_http",
    "read_limits",
    "read_ocpp",
]

from dataclasses import dataclass, field
from pathlib import Path

from chargewatch.alerting.remediation import BucketSpec, RateLimits
from chargewatch.api.http import SCOPES, ApiToken
from chargewatch.config.reading import Section, positive
from chargewatch.core.errors import ConfigError, ConfigProblem
from chargewatch.core.yamlsrc import Source
from chargewatch.detectors import DetectorConfig


@dataclass(frozen=True)
class HttpConfig:
    listen: str = "127.0.0.1:9108"  # "" disables the HTTP server
    token: str = field(default="", repr=False)  # a read-scope token for /api/v1
    tokens: tuple[ApiToken, ...] = field(default=(), repr=False)  # scoped tokens
    metrics_auth: bool = False  # /metrics needs a token too


@dataclass(frozen=True)
class LimitsConfig:
    max_payload_bytes: int = 1 << 20
    max_samples_per_message: int = 10_000
    max_future_s: float = 86_400.0
    deadletter_max_bytes: int = 64 << 20
    deadletter_keep: int = 5


@dataclass(frozen=True)
class OcppConfig:
    """The OCPP-J decoder's memory per charger (OcppDecoder; docs/architecture.md)."""

    # A CALL waits this long for its answer (and an answer for its CALL).
    pending_timeout_s: float = 120.0
    max_pending: int = 64  # CALLs waiting per charger and direction
    max_connector: int = 64  # a higher connector/EVSE id is rejected
    # A charger silent this long is forgotten (parked, with its open transactions).
    idle_prune_s: float = 86_400.0
    max_chargers: int = 200_000  # tracked at once; the longest silent go first


@dataclass(frozen=True)
class AlertingConfig:
    alertmanager: tuple[str, ...] = ()  # Alertmanager base URLs (every one gets every alert)
    webhook: str = ""  # Alertmanager-compatible webhook receiver (payload version 4)
    log: bool = True  # also log every notification
    resend_delay_s: float = 60.0
    external_url: str = ""  # generatorURL base in alerts
    remediation_allowlist: Path | None = None  # YAML {sites: {site: [Reset, ...]}}
    remediation_limits: RateLimits = field(default_factory=RateLimits)


@dataclass(frozen=True)
class OperatorConfig:
    name: str = ""
    address: str = ""  # lines separated by newlines, printed as given
    vat_id: str = ""
    logo: Path | None = None  # PNG, JPEG or SVG file, embedded in each page

    def receipt_fields(self) -> dict[str, str]:
        """The operator as receipts take it (billing.receipt)."""
        return {
            "name": self.name,
            "address": self.address,
            "vat_id": self.vat_id,
            "logo": str(self.logo or ""),
        }


@dataclass(frozen=True)
class BillingConfig:
    # What a session's energy_wh is when its register is proven wrong (stuck
    # under load, regression, unit): the best estimate by default, so that the
    # record is the most accurate figure and needs_review says why; "register"
    # where only the calibrated meter may be billed (German Eichrecht).
    energy_policy: str = "best_estimate"
    # A tariff id in fleet.yaml that no loaded tariff has: "fail" stops run and
    # replay at load (a typo would otherwise leave its sessions unpriced,
    # silently); "warn" logs it and records those sessions unpriced, for a
    # tariff not yet published.
    unknown_tariffs: str = "fail"
    # Where drivers reach this deployment's API (https://charge.example.com): a
    # CDR's signed_data.url is <base>/api/v1/sessions/{id}/receipt. "": no url.
    receipt_base_url: str = ""
    # Who the driver's receipts and statements say they are from (docs/receipts.md).
    operator: OperatorConfig = field(default_factory=OperatorConfig)


@dataclass(frozen=True)
class ClusterConfig:
    """Dynamic partitions through PostgreSQL leases (docs/scaling.md): 0 = off."""

    partitions: int = 0
    # A dead collector's partitions are claimable this long after its last
    # renewal (every third of it): takeover within 4/3 of it, 20 s by default.
    lease_s: float = 15.0
    # Partition k's MQTT session is "<session_prefix>-p<k>" (one per cluster).
    session_prefix: str = "chargewatch"

    @property
    def enabled(self) -> bool:
        return self.partitions > 0


#: SessionConfig.energy_policy's values (config may not import sessions; a test keeps them equal).
ENERGY_POLICIES = ("best_estimate", "register")
UNKNOWN_TARIFFS = ("fail", "warn")
_HTTP = ("listen", "token", "token_file", "tokens", "metrics_auth")
_TOKEN = ("scope", "token", "token_file")
_LIMITS = tuple(LimitsConfig.__dataclass_fields__)
_OCPP = tuple(OcppConfig.__dataclass_fields__)
_ALERTING = (
    "alertmanager", "webhook", "log", "resend_delay_s", "external_url", "remediation_allowlist",
    "remediation_limits",
)  # fmt: skip
_BUCKET = ("per_minute", "burst")


def read_http(top: Section) -> HttpConfig:
    s = top.child("http", allowed=_HTTP)
    return HttpConfig(
        listen=s.get("listen", str, "127.0.0.1:9108"),
        token=s.secret("token"),
        tokens=_tokens(s),
        metrics_auth=s.get("metrics_auth", bool, False),
    )


def _tokens(s: Section) -> tuple[ApiToken, ...]:
    """``http.tokens``: scoped API tokens, each given inline or in a file."""
    items = s.get("tokens", list, [], expected="a list of {scope, token_file}")
    out: list[ApiToken] = []
    for i, item in enumerate(items or []):
        p = (*s.path, "tokens", i)
        t = Section.open(s.r, item, p, s.base, allowed=_TOKEN, required=("scope",))
        scope = t.get(
            "scope", str, "read", check=lambda v: v in SCOPES, expected=" or ".join(SCOPES)
        )
        token = t.secret("token")
        if not token and t.m and "token" not in t.m and "token_file" not in t.m:
            s.r.fail(t.path, "expected token or token_file (a non-empty secret)")
            continue
        if token:
            out.append(ApiToken(scope, token))
    return tuple(out)


def read_billing(top: Section) -> BillingConfig:
    s = top.child(
        "billing", allowed=("energy_policy", "unknown_tariffs", "receipt_base_url", "operator")
    )
    return BillingConfig(
        operator=_operator(s),
        energy_policy=s.get(
            "energy_policy",
            str,
            BillingConfig.energy_policy,
            check=lambda v: v in ENERGY_POLICIES,
            expected=" or ".join(ENERGY_POLICIES),
        ),
        unknown_tariffs=s.get(
            "unknown_tariffs",
            str,
            BillingConfig.unknown_tariffs,
            check=lambda v: v in UNKNOWN_TARIFFS,
            expected=" or ".join(UNKNOWN_TARIFFS),
        ),
        receipt_base_url=s.get(
            "receipt_base_url",
            str,
            "",
            # "" is the default written out: no receipt URL in the CDRs.
            check=lambda v: v == "" or _http_url(v),
            expected="an http(s) URL without query or fragment, e.g. https://charge.example.com"
            ' (or "" for none)',
        ),
    )


_LOGO_TYPES = (".png", ".jpg", ".jpeg", ".svg")


def _operator(billing: Section) -> OperatorConfig:
    s = billing.child("operator", allowed=("name", "address", "vat_id", "logo"))
    logo = s.file("logo")
    if logo is not None and (logo.suffix.lower() not in _LOGO_TYPES or not logo.is_file()):
        s.r.fail((*s.path, "logo"), f"expected a PNG, JPEG or SVG file; {logo} is not one")
        logo = None
    return OperatorConfig(
        name=s.get("name", str, ""),
        address=s.get("address", str, ""),
        vat_id=s.get("vat_id", str, ""),
        logo=logo,
    )


def _http_url(v: str) -> bool:
    from urllib.parse import urlsplit  # noqa: PLC0415  (only when the key is set)

    u = urlsplit(v)
    return u.scheme in ("http", "https") and bool(u.netloc) and not u.query and not u.fragment


def read_cluster(top: Section) -> ClusterConfig:
    s = top.child("cluster", allowed=("partitions", "lease_s", "session_prefix"))
    d = ClusterConfig()
    return ClusterConfig(
        partitions=s.get(
            "partitions", int, 0, check=lambda v: 0 <= v <= 4096, expected="0 (off) to 4096"
        ),
        lease_s=s.get(
            "lease_s", float, d.lease_s, check=lambda v: 1 <= v <= 300, expected="1 to 300 s"
        ),
        session_prefix=s.get(
            "session_prefix",
            str,
            d.session_prefix,
            check=lambda v: bool(v) and len(v) <= 40 and v.replace("-", "").isalnum(),
            expected="1-40 letters, digits or -",
        ),
    )


def read_limits(top: Section) -> LimitsConfig:
    s = top.child("limits", allowed=_LIMITS)
    return LimitsConfig(
        max_payload_bytes=s.get(
            "max_payload_bytes", int, 1 << 20, check=positive, expected="bytes > 0"
        ),
        max_samples_per_message=s.get(
            "max_samples_per_message", int, 10_000, check=positive, expected="> 0"
        ),
        max_future_s=s.get("max_future_s", float, 86_400.0, check=positive, expected="seconds > 0"),
        deadletter_max_bytes=s.get(
            "deadletter_max_bytes",
            int,
            64 << 20,
            check=lambda v: v >= 4096,
            expected=">= 4096 bytes",
        ),
        deadletter_keep=s.get("deadletter_keep", int, 5, check=positive, expected="> 0 files"),
    )


def read_ocpp(top: Section) -> OcppConfig:
    s = top.child("ocpp", allowed=_OCPP)
    d = OcppConfig()
    pending = s.get(
        "pending_timeout_s", float, d.pending_timeout_s, check=positive, expected="seconds > 0"
    )
    idle = s.get(
        "idle_prune_s",
        float,
        d.idle_prune_s,
        check=lambda v: v >= pending,
        expected=f"seconds >= pending_timeout_s ({pending:g})",
    )
    return OcppConfig(
        pending_timeout_s=pending,
        max_pending=s.get("max_pending", int, d.max_pending, check=positive, expected="> 0"),
        max_connector=s.get("max_connector", int, d.max_connector, check=positive, expected="> 0"),
        idle_prune_s=idle,
        max_chargers=s.get("max_chargers", int, d.max_chargers, check=positive, expected="> 0"),
    )


def read_alerting(top: Section) -> AlertingConfig:
    s = top.child("alerting", allowed=_ALERTING)
    am = s.get("alertmanager", (list, str), [])
    return AlertingConfig(
        alertmanager=tuple(str(u) for u in ([am] if isinstance(am, str) else am or [])),
        webhook=s.get("webhook", str, ""),
        log=s.get("log", bool, True),
        resend_delay_s=s.get("resend_delay_s", float, 60.0, check=positive, expected="seconds > 0"),
        external_url=s.get("external_url", str, ""),
        remediation_allowlist=s.file("remediation_allowlist"),
        remediation_limits=_remediation_limits(
            s.child("remediation_limits", allowed=("charger", "site", "fleet"))
        ),
    )


def _remediation_limits(s: Section) -> RateLimits:
    """``alerting.remediation_limits``: a token bucket per charger, per site, for the fleet."""
    default = RateLimits()
    specs: dict[str, BucketSpec] = {}
    for kind in ("charger", "site", "fleet"):
        b = s.child(kind, allowed=_BUCKET)
        d: BucketSpec = getattr(default, kind)
        specs[kind] = BucketSpec(
            b.get("per_minute", float, d.per_minute, check=positive,
                  expected="commands per minute > 0"),
            b.get("burst", float, d.burst, check=lambda v: v >= 1, expected="commands >= 1"),
        )  # fmt: skip
    return RateLimits(**specs)


def read_detectors(top: Section) -> DetectorConfig:
    """The detectors' own reader checks their section; it gets the section's marks."""
    section = top.m.get("detectors")
    if section is None:
        return DetectorConfig()
    src = top.r.source
    sub = Source(
        src.file,
        section,
        {k[1:]: v for k, v in src.marks.items() if k[:1] == ("detectors",)},
        {k[1:]: v for k, v in src.key_marks.items() if k[:1] == ("detectors",)},
    )
    try:
        return DetectorConfig.from_mapping(section, src.file, sub)
    except ConfigError as exc:
        top.r.problems += [
            ConfigProblem(p.file, f"detectors.{p.path}", p.message, p.line, p.column)
            for p in exc.problems
        ]
        return DetectorConfig()
