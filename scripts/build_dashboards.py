#!/usr/bin/env python3
"""Writes the Grafana dashboards in dashboards/ (run it after editing; commit both).

The JSON is generated so that the five dashboards share one vocabulary: the
same datasource uids, variables, status colours and query shapes. Every
InfluxDB query is InfluxQL (DESIGN.md: it runs on InfluxDB 1.x, 2.x through
DBRP mappings, and 3.x); tests/deploy runs each one against a real InfluxDB.

Series (docs/deploy.md "Stored series"): ``meter`` in the default retention
policy (raw, 30 d); ``meter_1m``, ``site_1m``, ``status``, ``alert`` and
``session`` in ``downsampled`` (2 y). Fleet-wide panels read only the
downsampled series: one point per connector or site and minute, however many
chargers there are.

Usage: python scripts/build_dashboards.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "dashboards"

INFLUX = {"type": "influxdb", "uid": "chargewatch-influxdb"}
PROM = {"type": "prometheus", "uid": "chargewatch-prometheus"}

DS = '"downsampled"'  # the long retention policy (deploy/influxdb/init)
SITE = '"site" =~ /^$site$/'
CHARGER = '"charger" =~ /^$charger$/'
CONNECTOR = '"connector" =~ /^$connector$/'
#: How far back "current" panels look for the last status or alert transition.
#: Status and alert lines are written on change only, so a connector that has
#: been Available for a week has its last status line a week ago.
CURRENT_LOOKBACK = "time > now() - 30d"

#: chargewatch/storage/event_lines.py STATUS_CODES, with NOC colours.
STATUSES: list[tuple[int, str, str]] = [
    (1, "Available", "green"),
    (2, "Preparing", "light-blue"),
    (3, "Charging", "blue"),
    (4, "SuspendedEVSE", "yellow"),
    (5, "SuspendedEV", "light-yellow"),
    (6, "Finishing", "purple"),
    (7, "Reserved", "super-light-purple"),
    (8, "Unavailable", "orange"),
    (9, "Faulted", "red"),
]
SEVERITY_COLOURS = {"critical": "red", "warning": "orange", "info": "blue"}
#: Energy register steps above this (Wh per minute step) are not energy: 10 kWh in
#: a minute would be 600 kW, above any charger; such steps come from registers
#: sent in the wrong unit, meter swaps, or a gap of many minutes.
MAX_STEP_WH = 10_000
ALERT_GROUP = '"alertname", "severity", "charger", "connector", "fault", "error_code"'


# -- building blocks ---------------------------------------------------------------


def influx(query: str, ref: str = "A", *, alias: str = "", table: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {
        "refId": ref,
        "datasource": INFLUX,
        "rawQuery": True,
        "query": query,
        "resultFormat": "table" if table else "time_series",
    }
    if alias:
        t["alias"] = alias
    return t


def prom(expr: str, ref: str = "A", legend: str = "") -> dict[str, Any]:
    return {
        "refId": ref,
        "datasource": PROM,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": True,
    }


def charger_link() -> dict[str, Any]:
    """A field override: clicking a charger id opens its Charger detail dashboard."""
    return {
        "matcher": {"id": "byName", "options": "charger"},
        "properties": [
            {
                "id": "links",
                "value": [
                    {
                        "title": "Charger detail",
                        "url": "/d/cw-charger-detail?var-charger=${__value.raw}"
                        "&${__url_time_range}",
                    }
                ],
            }
        ],
    }


def status_mappings() -> list[dict[str, Any]]:
    return [
        {
            "type": "value",
            "options": {
                str(code): {"text": name, "color": colour, "index": i}
                for i, (code, name, colour) in enumerate(STATUSES)
            },
        }
    ]


class Layout:
    """Places panels left to right on Grafana's 24-column grid."""

    def __init__(self) -> None:
        self.x = self.y = self.row_h = 0
        self.next_id = 1

    def place(self, w: int, h: int) -> dict[str, int]:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def newline(self) -> None:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0


class Dash:
    def __init__(self, uid: str, title: str, description: str, tags: list[str]) -> None:
        self.uid, self.title, self.description, self.tags = uid, title, description, tags
        self.layout = Layout()
        self.panels: list[dict[str, Any]] = []
        self.variables: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = [
            {
                "builtIn": 1,
                "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True,
                "hide": True,
                "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts",
                "type": "dashboard",
            }
        ]
        self.time_from = "now-6h"
        self.refresh = "1m"

    def row(self, title: str) -> None:
        self.layout.newline()
        pos = self.layout.place(24, 1)
        self.layout.newline()
        self.panels.append(
            {
                "id": self._id(),
                "type": "row",
                "title": title,
                "gridPos": pos,
                "collapsed": False,
                "panels": [],
            }
        )

    def _id(self) -> int:
        i = self.layout.next_id
        self.layout.next_id += 1
        return i

    def panel(
        self,
        kind: str,
        title: str,
        targets: list[dict[str, Any]],
        *,
        w: int = 12,
        h: int = 8,
        unit: str = "",
        description: str = "",
        decimals: int | None = None,
        options: dict[str, Any] | None = None,
        defaults: dict[str, Any] | None = None,
        overrides: list[dict[str, Any]] | None = None,
        transformations: list[dict[str, Any]] | None = None,
        interval: str = "",
        time_from: str = "",
    ) -> None:
        fd: dict[str, Any] = {"color": {"mode": "palette-classic"}}
        if kind in ("stat", "gauge", "bargauge"):
            fd["color"] = {"mode": "thresholds"}
            fd["thresholds"] = {"mode": "absolute", "steps": [{"color": "blue", "value": None}]}
        if unit:
            fd["unit"] = unit
        if decimals is not None:
            fd["decimals"] = decimals
        fd.update(defaults or {})
        ds = targets[0]["datasource"]
        p: dict[str, Any] = {
            "id": self._id(),
            "type": kind,
            "title": title,
            "datasource": ds,
            "gridPos": self.layout.place(w, h),
            "targets": targets,
            "fieldConfig": {"defaults": fd, "overrides": overrides or []},
            "options": options or {},
        }
        if description:
            p["description"] = description
        if transformations:
            p["transformations"] = transformations
        if interval:
            p["interval"] = interval
        if time_from:
            p["timeFrom"] = time_from
            p["hideTimeOverride"] = False
        self.panels.append(p)

    def influx_var(
        self,
        name: str,
        label: str,
        query: str,
        *,
        multi: bool = True,
        include_all: bool = True,
    ) -> None:
        self.variables.append(
            {
                "name": name,
                "label": label,
                "type": "query",
                "datasource": INFLUX,
                "query": query,
                "definition": query,
                "refresh": 1,  # on dashboard load: new chargers appear without a redeploy
                "multi": multi,
                "includeAll": include_all,
                "sort": 1,
                "current": {},
                "options": [],
                "hide": 0,
            }
        )

    def site_var(self) -> None:
        self.influx_var("site", "Site", f'SHOW TAG VALUES FROM {DS}."site_1m" WITH KEY = "site"')

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["chargewatch", *self.tags],
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": 39,
            "version": 1,
            "time": {"from": self.time_from, "to": "now"},
            "timepicker": {},
            "timezone": "browser",
            "refresh": self.refresh,
            "fiscalYearStartMonth": 0,
            "liveNow": False,
            "weekStart": "",
            "links": [
                {
                    "type": "dashboards",
                    "tags": ["chargewatch"],
                    "asDropdown": True,
                    "title": "chargewatch",
                    "includeVars": True,
                    "keepTime": True,
                }
            ],
            "annotations": {"list": self.annotations},
            "templating": {"list": self.variables},
            "panels": self.panels,
        }


def stat_opts(reduce: str = "lastNotNull", text: str = "value") -> dict[str, Any]:
    return {
        "reduceOptions": {"calcs": [reduce], "fields": "", "values": False},
        "colorMode": "value",
        "graphMode": "area",
        "textMode": text,
        "justifyMode": "auto",
        "orientation": "auto",
    }


def ts_opts() -> dict[str, Any]:
    return {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def ts_defaults(stack: bool = False, bars: bool = False) -> dict[str, Any]:
    custom: dict[str, Any] = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 60 if bars else 10,
        "showPoints": "never",
        "spanNulls": False,
    }
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    return {"custom": custom}


def status_count(code: int, name: str, ref: str, extra_where: str = "") -> dict[str, Any]:
    # The last status of every connector, then how many of them hold `code`.
    # (Outer WHERE on a subquery field; InfluxQL has no GROUP BY field.)
    inner = (
        f'SELECT last("status_code") AS "code" FROM {DS}."status" '
        f'WHERE {CURRENT_LOOKBACK} AND {SITE}{extra_where} GROUP BY "charger", "connector"'
    )
    return influx(f'SELECT count("code") FROM ({inner}) WHERE "code" = {code}', ref, alias=name)


# -- 1. fleet overview ---------------------------------------------------------------


def fleet_overview() -> Dash:
    d = Dash(
        "cw-fleet-overview",
        "chargewatch · Fleet overview",
        "Fleet health at a glance for the NOC: status, online share, live power, "
        "active sessions, open faults, energy and revenue today.",
        ["fleet", "noc"],
    )
    d.site_var()
    site_1m = f'{DS}."site_1m"'
    where = f"WHERE $timeFilter AND {SITE}"
    d.panel(
        "stat",
        "Online share",
        [
            influx(
                f'SELECT sum("connectors_reporting") / sum("connectors_total") * 100 '
                f"FROM {site_1m} {where} GROUP BY time(1m) fill(none)",
                alias="online",
            )
        ],
        w=4,
        h=5,
        unit="percent",
        decimals=1,
        description="Connectors that sent a meter sample in the last closed minute, "
        "of all connectors known (inventory and seen).",
        options=stat_opts(),
        defaults={
            "thresholds": {
                "mode": "absolute",
                "steps": [
                    {"color": "red", "value": None},
                    {"color": "orange", "value": 90},
                    {"color": "green", "value": 97},
                ],
            }
        },
        interval="1m",
    )
    d.panel(
        "stat",
        "Fleet power",
        [
            influx(
                f'SELECT sum("power_w_sum") / 1000 FROM {site_1m} {where} '
                "GROUP BY time(1m) fill(none)",
                alias="kW",
            )
        ],
        w=4,
        h=5,
        unit="kwatt",
        decimals=1,
        options=stat_opts(),
        interval="1m",
    )
    d.panel(
        "stat",
        "Connectors charging",
        [
            influx(
                f'SELECT sum("connectors_charging") FROM {site_1m} {where} '
                "GROUP BY time(1m) fill(none)",
                alias="charging",
            )
        ],
        w=4,
        h=5,
        unit="none",
        description="Connectors whose mean power in the last closed minute was above 100 W.",
        options=stat_opts(),
        interval="1m",
    )
    d.panel(
        "stat",
        "Active sessions",
        [
            influx(
                f'SELECT count("code") FROM (SELECT last("status_code") AS "code" '
                f'FROM {DS}."status" WHERE {CURRENT_LOOKBACK} AND {SITE} '
                'GROUP BY "charger", "connector") WHERE "code" >= 3 AND "code" <= 5',
                alias="sessions",
            )
        ],
        w=4,
        h=5,
        unit="none",
        description="Connectors whose current status is Charging, SuspendedEVSE or SuspendedEV.",
        options=stat_opts(),
    )
    d.panel(
        "stat",
        "Energy today",
        [
            influx(
                f'SELECT sum("step") / 1000 FROM (SELECT non_negative_difference('
                f'"energy_wh_last") AS "step" FROM {DS}."meter_1m" {where} '
                f'GROUP BY "charger", "connector") WHERE "step" < {MAX_STEP_WH}',
                alias="kWh",
            )
        ],
        w=4,
        h=5,
        unit="kwatth",
        decimals=0,
        description="Energy registers' minute-to-minute increases since midnight, summed. "
        "Register resets (negative steps) and implausible jumps (over 10 kWh in a step: a "
        "register sent in kWh as Wh, or a long gap) are left out; billing uses sessions.",
        options=stat_opts(),
        time_from="now/d",
    )
    d.panel(
        "stat",
        "Revenue today",
        [
            influx(
                f'SELECT sum("total_cost_incl_vat") FROM {DS}."session" {where}',
                alias="incl. VAT",
            )
        ],
        w=4,
        h=5,
        decimals=2,
        description="Priced sessions that ended today, incl. VAT, in the tariffs' currency "
        "(one currency per fleet assumed).",
        options=stat_opts(),
        time_from="now/d",
    )
    d.panel(
        "bargauge",
        "Connectors by status",
        [status_count(code, name, chr(ord("A") + i)) for i, (code, name, _) in enumerate(STATUSES)],
        w=8,
        h=9,
        unit="none",
        description="The last status each connector reported (OCPP 1.6 ChargePointStatus).",
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "basic",
            "showUnfilled": True,
        },
        overrides=[
            {
                "matcher": {"id": "byName", "options": name},
                "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": colour}}],
            }
            for _, name, colour in STATUSES
        ],
    )
    d.panel(
        "bargauge",
        "Open alerts by severity",
        [
            influx(
                f'SELECT sum("firing") FROM (SELECT last("firing") AS "firing" '
                f'FROM {DS}."alert" WHERE {CURRENT_LOOKBACK} AND {SITE} GROUP BY {ALERT_GROUP}) '
                'GROUP BY "severity"',
                alias="$tag_severity",
            )
        ],
        w=6,
        h=9,
        unit="none",
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "basic",
            "showUnfilled": True,
        },
        overrides=[
            {
                "matcher": {"id": "byName", "options": sev},
                "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": c}}],
            }
            for sev, c in SEVERITY_COLOURS.items()
        ],
    )
    d.panel(
        "table",
        "Open alerts",
        [
            influx(
                f'SELECT "firing", "value" FROM (SELECT last("firing") AS "firing", '
                f'last("value") AS "value" FROM {DS}."alert" WHERE {CURRENT_LOOKBACK} AND {SITE} '
                f'GROUP BY {ALERT_GROUP}) WHERE "firing" = 1 GROUP BY {ALERT_GROUP}',
                table=True,
            )
        ],
        w=10,
        h=9,
        options={"showHeader": True, "sortBy": [{"displayName": "severity", "desc": False}]},
        overrides=[charger_link()],
        transformations=[
            # Time is the lookback's start (a subquery artefact), not the alert's.
            {"id": "organize", "options": {"excludeByName": {"firing": True, "Time": True}}},
        ],
    )
    d.row("Power and load")
    d.panel(
        "timeseries",
        "Live power per site",
        [
            influx(
                f'SELECT mean("power_w_sum") / 1000 FROM {site_1m} {where} '
                'GROUP BY time($__interval), "site" fill(none)',
                alias="$tag_site",
            )
        ],
        w=12,
        unit="kwatt",
        options=ts_opts(),
        defaults=ts_defaults(stack=True),
        interval="1m",
    )
    d.panel(
        "timeseries",
        "Connectors charging per site",
        [
            influx(
                f'SELECT max("connectors_charging") FROM {site_1m} {where} '
                'GROUP BY time($__interval), "site" fill(none)',
                alias="$tag_site",
            )
        ],
        w=12,
        unit="none",
        options=ts_opts(),
        defaults=ts_defaults(stack=True),
        interval="1m",
    )
    d.panel(
        "timeseries",
        "Online share per site",
        [
            influx(
                f'SELECT sum("connectors_reporting") / sum("connectors_total") * 100 '
                f'FROM {site_1m} {where} GROUP BY time($__interval), "site" fill(none)',
                alias="$tag_site",
            )
        ],
        w=12,
        unit="percent",
        options=ts_opts(),
        defaults={**ts_defaults(), "min": 0, "max": 100},
        interval="1m",
    )
    d.panel(
        "timeseries",
        "Alerts fired",
        [
            influx(
                f'SELECT count("firing") FROM {DS}."alert" {where} AND "firing" = 1 '
                'GROUP BY time($__interval), "severity" fill(0)',
                alias="$tag_severity",
            )
        ],
        w=12,
        unit="none",
        options=ts_opts(),
        defaults=ts_defaults(stack=True, bars=True),
        interval="5m",
    )
    return d


# -- 2. charger detail ---------------------------------------------------------------


def charger_detail() -> Dash:
    d = Dash(
        "cw-charger-detail",
        "chargewatch · Charger detail",
        "One charger: power, per-phase current and voltage, temperature, energy register, "
        "SoC, status timeline, alerts and sessions.",
        ["charger"],
    )
    d.time_from = "now-3h"
    d.refresh = "30s"
    d.site_var()
    d.influx_var(
        "charger",
        "Charger",
        f'SHOW TAG VALUES FROM {DS}."meter_1m" WITH KEY = "charger" WHERE {SITE}',
        multi=False,
        include_all=False,
    )
    d.influx_var(
        "connector",
        "Connector",
        f'SHOW TAG VALUES FROM {DS}."meter_1m" WITH KEY = "connector" WHERE {CHARGER}',
    )
    d.annotations.append(
        {
            "name": "Alerts",
            "datasource": INFLUX,
            "enable": True,
            "iconColor": "red",
            "query": f'SELECT "state", "value", "alertname", "severity", "connector" '
            f'FROM {DS}."alert" WHERE $timeFilter AND {CHARGER}',
            "textColumn": "state",
            "tagsColumn": "alertname,severity,connector",
            "titleColumn": "alertname",
        }
    )
    meter = '"meter"'  # the default retention policy: raw samples, 30 days
    where = f"WHERE $timeFilter AND {CHARGER} AND {CONNECTOR}"
    by_conn = 'GROUP BY time($__interval), "connector" fill(none)'
    d.panel(
        "timeseries",
        "Power",
        [
            influx(
                f'SELECT mean("power_w") / 1000 FROM {meter} {where} {by_conn}',
                alias="connector $tag_connector",
            )
        ],
        w=12,
        unit="kwatt",
        options=ts_opts(),
        defaults=ts_defaults(),
    )
    d.panel(
        "timeseries",
        "Current per phase",
        [
            influx(
                f'SELECT mean("current_l{ph}_a") FROM {meter} {where} {by_conn}',
                chr(ord("A") + ph - 1),
                alias=f"connector $tag_connector L{ph}",
            )
            for ph in (1, 2, 3)
        ],
        w=12,
        unit="amp",
        options=ts_opts(),
        defaults=ts_defaults(),
    )
    d.panel(
        "timeseries",
        "Voltage per phase",
        [
            influx(
                f'SELECT mean("voltage_l{ph}_v") FROM {meter} {where} {by_conn}',
                chr(ord("A") + ph - 1),
                alias=f"connector $tag_connector L{ph}",
            )
            for ph in (1, 2, 3)
        ],
        w=12,
        unit="volt",
        options=ts_opts(),
        defaults=ts_defaults(),
    )
    d.panel(
        "timeseries",
        "Temperature",
        [
            influx(
                f'SELECT max("temperature_c") FROM {meter} {where} {by_conn}',
                alias="connector $tag_connector",
            )
        ],
        w=12,
        unit="celsius",
        options=ts_opts(),
        defaults=ts_defaults(),
    )
    d.panel(
        "timeseries",
        "Energy register",
        [
            influx(
                f'SELECT last("energy_wh") / 1000 FROM {meter} {where} {by_conn}',
                alias="connector $tag_connector",
            )
        ],
        w=8,
        unit="kwatth",
        options=ts_opts(),
        defaults=ts_defaults(),
    )
    d.panel(
        "timeseries",
        "State of charge",
        [
            influx(
                f'SELECT last("soc_pct") FROM {meter} {where} {by_conn}',
                alias="connector $tag_connector",
            )
        ],
        w=8,
        unit="percent",
        description="Reported by DC chargers (ISO 15118 / CHAdeMO); AC chargers do not know it.",
        options=ts_opts(),
        defaults={**ts_defaults(), "min": 0, "max": 100},
    )
    d.panel(
        "timeseries",
        "Offered vs drawn current (L1)",
        [
            influx(
                f'SELECT mean("offered_a") FROM {meter} {where} {by_conn}',
                "A",
                alias="offered $tag_connector",
            ),
            influx(
                f'SELECT mean("current_l1_a") FROM {meter} {where} {by_conn}',
                "B",
                alias="drawn $tag_connector",
            ),
        ],
        w=8,
        unit="amp",
        description="A car drawing far less than offered is limited by itself (SoC, cold "
        "battery); drawing more points at a metering or control fault.",
        options=ts_opts(),
        defaults=ts_defaults(),
    )
    d.panel(
        "state-timeline",
        "Status",
        [
            influx(
                f'SELECT last("status_code") FROM {DS}."status" {where} '
                'GROUP BY time($__interval), "connector" fill(previous)',
                alias="connector $tag_connector",
            )
        ],
        w=24,
        h=6,
        options={
            "mergeValues": True,
            "showValue": "auto",
            "alignValue": "left",
            "rowHeight": 0.9,
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        },
        defaults={"mappings": status_mappings(), "color": {"mode": "thresholds"}},
        interval="1m",
    )
    d.panel(
        "table",
        "Alerts",
        [
            influx(
                f'SELECT "state", "value", "duration_s" FROM {DS}."alert" '
                f"WHERE $timeFilter AND {CHARGER} GROUP BY {ALERT_GROUP}",
                table=True,
            )
        ],
        w=12,
        h=8,
        options={"showHeader": True, "sortBy": [{"displayName": "Time", "desc": True}]},
        overrides=[
            {
                "matcher": {"id": "byName", "options": "duration_s"},
                "properties": [{"id": "unit", "value": "s"}],
            }
        ],
    )
    d.panel(
        "table",
        "Sessions",
        [
            influx(
                f'SELECT "energy_wh" / 1000 AS "energy_kwh", "duration_s", "idle_s", '
                f'"total_cost_incl_vat", "currency", "tariff_id", "energy_source" '
                f'FROM {DS}."session" WHERE $timeFilter AND {CHARGER} AND {CONNECTOR} '
                'GROUP BY "connector"',
                table=True,
            )
        ],
        w=12,
        h=8,
        options={"showHeader": True, "sortBy": [{"displayName": "Time", "desc": True}]},
        overrides=[
            {
                "matcher": {"id": "byRegexp", "options": "duration_s|idle_s"},
                "properties": [{"id": "unit", "value": "s"}],
            },
            {
                "matcher": {"id": "byName", "options": "energy_kwh"},
                "properties": [{"id": "unit", "value": "kwatth"}, {"id": "decimals", "value": 2}],
            },
        ],
    )
    return d


# -- 3. sessions and revenue ------------------------------------------------------------


def sessions_revenue() -> Dash:
    d = Dash(
        "cw-sessions-revenue",
        "chargewatch · Sessions and revenue",
        "Charging sessions, energy and priced revenue per day and site; revenue by tariff; "
        "idle (blocking) time.",
        ["sessions", "billing"],
    )
    d.time_from = "now-30d"
    d.refresh = "5m"
    d.site_var()
    session = f'{DS}."session"'
    where = f"WHERE $timeFilter AND {SITE}"
    # Days in UTC: InfluxDB groups by time in UTC unless told otherwise, and a
    # fleet spans time zones (a tz() clause per site would split the query).
    per_day = 'GROUP BY time(1d), "site" fill(0)'
    for title, q, unit in [
        ("Sessions", f'SELECT count("energy_wh") FROM {session} {where}', "none"),
        ("Energy", f'SELECT sum("energy_wh") / 1000 FROM {session} {where}', "kwatth"),
        ("Revenue (incl. VAT)", f'SELECT sum("total_cost_incl_vat") FROM {session} {where}', ""),
        (
            "Mean energy per session",
            f'SELECT mean("energy_wh") / 1000 FROM {session} {where}',
            "kwatth",
        ),
    ]:
        d.panel(
            "stat",
            title,
            [influx(q, alias=title)],
            w=6,
            h=4,
            unit=unit,
            decimals=0 if unit == "none" else 1,
            options=stat_opts(reduce="sum" if "Mean" not in title else "mean", text="value"),
        )
    d.panel(
        "timeseries",
        "Sessions per day",
        [influx(f'SELECT count("energy_wh") FROM {session} {where} {per_day}', alias="$tag_site")],
        w=12,
        unit="none",
        options=ts_opts(),
        defaults=ts_defaults(stack=True, bars=True),
    )
    d.panel(
        "timeseries",
        "Energy per day",
        [
            influx(
                f'SELECT sum("energy_wh") / 1000 FROM {session} {where} {per_day}',
                alias="$tag_site",
            )
        ],
        w=12,
        unit="kwatth",
        options=ts_opts(),
        defaults=ts_defaults(stack=True, bars=True),
    )
    d.panel(
        "timeseries",
        "Revenue per day (incl. VAT)",
        [
            influx(
                f'SELECT sum("total_cost_incl_vat") FROM {session} {where} {per_day}',
                alias="$tag_site",
            )
        ],
        w=12,
        decimals=2,
        options=ts_opts(),
        defaults=ts_defaults(stack=True, bars=True),
    )
    d.panel(
        "barchart",
        "Revenue by tariff",
        [
            influx(
                f'SELECT "total_cost_excl_vat", "total_cost_incl_vat", "tariff_id" '
                f"FROM {session} {where}",
                table=True,
            )
        ],
        w=12,
        decimals=2,
        description="tariff_id is a field, not a tag (it may change with each session's "
        "revision), so the grouping happens in Grafana.",
        options={
            "orientation": "horizontal",
            "xField": "tariff_id",
            "showValue": "auto",
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        },
        transformations=[
            {
                "id": "groupBy",
                "options": {
                    "fields": {
                        "tariff_id": {"operation": "groupby", "aggregations": []},
                        "total_cost_excl_vat": {
                            "operation": "aggregate",
                            "aggregations": ["sum"],
                        },
                        "total_cost_incl_vat": {
                            "operation": "aggregate",
                            "aggregations": ["sum"],
                        },
                    }
                },
            }
        ],
    )
    d.panel(
        "timeseries",
        "Idle time after charging",
        [
            influx(
                f'SELECT mean("idle_s") / 60 FROM {session} {where} {per_day}',
                alias="$tag_site mean",
            ),
            influx(
                f'SELECT sum("idle_s") / 3600 FROM {session} {where} {per_day}',
                "B",
                alias="$tag_site total h",
            ),
        ],
        w=12,
        unit="m",
        description="Time connected after the car stopped drawing power: a blocked charger.",
        options=ts_opts(),
        defaults=ts_defaults(),
        overrides=[
            {
                "matcher": {"id": "byFrameRefID", "options": "B"},
                "properties": [
                    {"id": "unit", "value": "h"},
                    {"id": "custom.axisPlacement", "value": "right"},
                ],
            }
        ],
    )
    d.panel(
        "timeseries",
        "Session duration",
        [
            influx(
                f'SELECT median("duration_s") / 60 FROM {session} {where} {per_day}',
                alias="$tag_site median",
            ),
            influx(
                f'SELECT percentile("duration_s", 90) / 60 FROM {session} {where} {per_day}',
                "B",
                alias="$tag_site p90",
            ),
        ],
        w=12,
        unit="m",
        options=ts_opts(),
        defaults=ts_defaults(),
    )
    d.panel(
        "table",
        "Sessions",
        [
            influx(
                f'SELECT "energy_wh" / 1000 AS "energy_kwh", "duration_s", "idle_s", '
                f'"total_cost_excl_vat", "total_cost_incl_vat", "currency", "tariff_id", '
                f'"energy_source", "revision" FROM {session} {where} '
                'GROUP BY "site", "charger", "connector"',
                table=True,
            )
        ],
        w=24,
        h=10,
        options={"showHeader": True, "sortBy": [{"displayName": "Time", "desc": True}]},
        overrides=[
            {
                "matcher": {"id": "byRegexp", "options": "duration_s|idle_s"},
                "properties": [{"id": "unit", "value": "s"}],
            },
            {
                "matcher": {"id": "byName", "options": "energy_kwh"},
                "properties": [{"id": "unit", "value": "kwatth"}, {"id": "decimals", "value": 2}],
            },
        ],
    )
    return d


# -- 4. faults and reliability ------------------------------------------------------------


def faults_reliability() -> Dash:
    d = Dash(
        "cw-faults-reliability",
        "chargewatch · Faults and reliability",
        "Faults by error code and fault label, time to resolve, the chargers and models "
        "that fault most, and availability.",
        ["faults", "reliability"],
    )
    d.time_from = "now-7d"
    d.refresh = "5m"
    d.site_var()
    alert = f'{DS}."alert"'
    fired = f'WHERE $timeFilter AND {SITE} AND "firing" = 1'
    resolved = f"WHERE $timeFilter AND {SITE} AND \"state\" = 'resolved'"
    bar_opts = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "orientation": "horizontal",
        "displayMode": "gradient",
        "showUnfilled": True,
    }
    d.panel(
        "bargauge",
        "Faults by fault label",
        [
            influx(
                f'SELECT count("firing") FROM {alert} {fired} AND "fault" != \'\' GROUP BY "fault"',
                alias="$tag_fault",
            )
        ],
        w=8,
        h=9,
        unit="none",
        description="Alerts raised from telemetry (detectors), by fault (DESIGN.md vocabulary).",
        options=bar_opts,
    )
    d.panel(
        "bargauge",
        "Faults by error code",
        [
            influx(
                f'SELECT count("firing") FROM {alert} {fired} AND "error_code" != \'\' '
                'GROUP BY "error_code"',
                alias="$tag_error_code",
            )
        ],
        w=8,
        h=9,
        unit="none",
        description="Alerts raised from the chargers' own OCPP error codes.",
        options=bar_opts,
    )
    d.panel(
        "table",
        "Time to resolve",
        [
            influx(
                f'SELECT count("duration_s") AS "resolved", mean("duration_s") AS "mean", '
                f'percentile("duration_s", 90) AS "p90", max("duration_s") AS "max" '
                f'FROM {alert} {resolved} GROUP BY "alertname"',
                table=True,
            )
        ],
        w=8,
        h=9,
        options={"showHeader": True, "sortBy": [{"displayName": "mean", "desc": True}]},
        overrides=[
            {
                "matcher": {"id": "byRegexp", "options": "mean|p90|max"},
                "properties": [{"id": "unit", "value": "s"}],
            }
        ],
    )
    d.panel(
        "timeseries",
        "Faults raised",
        [
            influx(
                f'SELECT count("firing") FROM {alert} {fired} '
                'GROUP BY time($__interval), "severity" fill(0)',
                alias="$tag_severity",
            )
        ],
        w=12,
        unit="none",
        options=ts_opts(),
        defaults=ts_defaults(stack=True, bars=True),
        overrides=[
            {
                "matcher": {"id": "byName", "options": sev},
                "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": c}}],
            }
            for sev, c in SEVERITY_COLOURS.items()
        ],
        interval="1h",
    )
    d.panel(
        "timeseries",
        "Mean time to resolve",
        [
            influx(
                f'SELECT mean("duration_s") FROM {alert} {resolved} '
                'GROUP BY time($__interval), "severity" fill(none)',
                alias="$tag_severity",
            )
        ],
        w=12,
        unit="s",
        options=ts_opts(),
        defaults=ts_defaults(),
        interval="1h",
    )
    d.panel(
        "table",
        "Top offending chargers",
        [
            influx(
                f'SELECT top("faults", "charger", 10) AS "faults" FROM (SELECT count("firing") '
                f'AS "faults" FROM {alert} {fired} GROUP BY "charger")',
                table=True,
            )
        ],
        w=8,
        h=9,
        options={"showHeader": True, "sortBy": [{"displayName": "faults", "desc": True}]},
        overrides=[charger_link()],
        transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True}}}],
    )
    d.panel(
        "table",
        "Top offending models",
        [
            influx(
                f'SELECT top("faults", "model", 10) AS "faults" FROM (SELECT count("firing") '
                f'AS "faults" FROM {alert} {fired} GROUP BY "model")',
                table=True,
            )
        ],
        w=8,
        h=9,
        description="The charger model comes from the fleet inventory (fleet.yaml).",
        options={"showHeader": True, "sortBy": [{"displayName": "faults", "desc": True}]},
        transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True}}}],
    )
    # Availability from the status series: a connector is out of service while its
    # status is Unavailable (8) or Faulted (9); floor(code / 8) is 1 exactly then.
    status_5m = (
        f'SELECT last("status_code") AS "code" FROM {DS}."status" WHERE $timeFilter AND {SITE} '
        'GROUP BY time(5m), "site", "charger", "connector" fill(previous)'
    )
    oos = f'SELECT floor("code" / 8) AS "oos" FROM ({status_5m})'
    d.panel(
        "table",
        "Least available chargers",
        [
            influx(
                f'SELECT bottom("availability", "charger", 10) AS "availability" FROM '
                f'(SELECT 100 - 100 * mean("oos") AS "availability" FROM ({oos}) '
                'GROUP BY "charger")',
                table=True,
            )
        ],
        w=8,
        h=9,
        description="Share of 5-minute steps not Unavailable or Faulted, over the time range.",
        options={"showHeader": True, "sortBy": [{"displayName": "availability", "desc": False}]},
        overrides=[
            {
                "matcher": {"id": "byName", "options": "availability"},
                "properties": [{"id": "unit", "value": "percent"}, {"id": "decimals", "value": 2}],
            },
            charger_link(),
        ],
        transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True}}}],
    )
    d.panel(
        "bargauge",
        "Availability per site (status)",
        [
            # Over the whole range, not per interval: InfluxDB 1.6 repeats time
            # buckets when an outer GROUP BY time() reads a subquery grouped by time().
            influx(
                f'SELECT 100 - 100 * mean("oos") FROM ({oos}) GROUP BY "site"',
                alias="$tag_site",
            )
        ],
        w=12,
        unit="percent",
        decimals=2,
        description="Connector time not Unavailable or Faulted, as reported by the chargers, "
        "over the time range.",
        options={**bar_opts, "displayMode": "lcd"},
        defaults={
            "min": 80,
            "max": 100,
            "thresholds": {
                "mode": "absolute",
                "steps": [
                    {"color": "red", "value": None},
                    {"color": "orange", "value": 95},
                    {"color": "green", "value": 99},
                ],
            },
        },
    )
    d.panel(
        "timeseries",
        "Availability per site (reporting)",
        [
            influx(
                f'SELECT sum("connectors_reporting") / sum("connectors_total") * 100 '
                f'FROM {DS}."site_1m" WHERE $timeFilter AND {SITE} '
                'GROUP BY time($__interval), "site" fill(none)',
                alias="$tag_site",
            )
        ],
        w=12,
        unit="percent",
        description="Connector-minutes with telemetry, of all connector-minutes: what the "
        "chargers' own status cannot show (a charger that is off reports nothing).",
        options=ts_opts(),
        defaults={**ts_defaults(), "max": 100},
        interval="1h",
    )
    return d


# -- 5. collector health (Prometheus) -------------------------------------------------------


def collector_health() -> Dash:
    d = Dash(
        "cw-collector-health",
        "chargewatch · Collector health",
        "The collector itself (Prometheus metrics): ingest, rejects, InfluxDB writes, "
        "spool, rule evaluation, alerts.",
        ["collector", "ops"],
    )
    d.time_from = "now-3h"
    d.refresh = "30s"
    d.variables.append(
        {
            "name": "instance",
            "label": "Collector",
            "type": "query",
            "datasource": PROM,
            "query": 'label_values(up{job="chargewatch"}, instance)',
            "definition": 'label_values(up{job="chargewatch"}, instance)',
            "refresh": 1,
            "multi": True,
            "includeAll": True,
            "sort": 1,
            "current": {},
            "options": [],
            "hide": 0,
        }
    )
    sel = 'instance=~"$instance"'
    ri = "$__rate_interval"
    d.panel(
        "stat",
        "Collector up",
        [prom(f'up{{job="chargewatch", {sel}}}', legend="{{instance}}")],
        w=4,
        h=5,
        options=stat_opts(),
        defaults={
            "mappings": [
                {
                    "type": "value",
                    "options": {
                        "0": {"text": "DOWN", "color": "red"},
                        "1": {"text": "UP", "color": "green"},
                    },
                }
            ]
        },
    )
    d.panel(
        "stat",
        "MQTT connected",
        [prom(f"chargewatch_mqtt_connected{{{sel}}}", legend="{{instance}}")],
        w=4,
        h=5,
        options=stat_opts(),
        defaults={
            "mappings": [
                {
                    "type": "value",
                    "options": {
                        "0": {"text": "disconnected", "color": "red"},
                        "1": {"text": "connected", "color": "green"},
                    },
                }
            ]
        },
    )
    d.panel(
        "stat",
        "Chargers online",
        [prom(f"sum(chargewatch_chargers_online{{{sel}}})")],
        w=4,
        h=5,
        options=stat_opts(),
    )
    d.panel(
        "stat",
        "Connectors",
        [prom(f"sum by (inventory) (chargewatch_connectors{{{sel}}})", legend="{{inventory}}")],
        w=4,
        h=5,
        options=stat_opts(),
    )
    d.panel(
        "stat",
        "Alerts firing",
        [
            prom(
                f'sum by (severity) (chargewatch_alerts{{{sel}, state="firing"}})',
                legend="{{severity}}",
            )
        ],
        w=8,
        h=5,
        description="Charger alerts currently firing in the collector's rule engine.",
        options=stat_opts(),
    )
    d.row("Ingest")
    d.panel(
        "timeseries",
        "Ingest rate",
        [
            prom(f"sum(rate(chargewatch_samples_total{{{sel}}}[{ri}]))", legend="meter samples"),
            prom(
                f"sum by (kind) (rate(chargewatch_messages_total{{{sel}}}[{ri}]))",
                "B",
                legend="messages {{kind}}",
            ),
        ],
        w=12,
        unit="ops",
        options=ts_opts(),
        defaults=ts_defaults(),
    )
    d.panel(
        "timeseries",
        "Ingest lag and queue",
        [
            prom(f"max(chargewatch_ingest_lag_seconds{{{sel}}})", legend="lag"),
            prom(f"sum(chargewatch_queue_depth{{{sel}}})", "B", legend="queued messages"),
        ],
        w=12,
        unit="s",
        options=ts_opts(),
        defaults=ts_defaults(),
        overrides=[
            {
                "matcher": {"id": "byFrameRefID", "options": "B"},
                "properties": [
                    {"id": "unit", "value": "short"},
                    {"id": "custom.axisPlacement", "value": "right"},
                ],
            }
        ],
    )
    d.panel(
        "timeseries",
        "Rejected by reason",
        [
            prom(
                f"sum by (reason) (rate(chargewatch_rejected_total{{{sel}}}[{ri}]))",
                legend="{{reason}}",
            )
        ],
        w=12,
        unit="ops",
        options=ts_opts(),
        defaults=ts_defaults(stack=True),
    )
    d.panel(
        "timeseries",
        "Batch processing time",
        [
            prom(
                f"histogram_quantile({q}, sum by (le) "
                f"(rate(chargewatch_batch_seconds_bucket{{{sel}}}[{ri}])))",
                ref,
                legend=f"p{int(q * 100)}",
            )
            for ref, q in (("A", 0.5), ("B", 0.95), ("C", 0.99))
        ],
        w=12,
        unit="s",
        options=ts_opts(),
        defaults=ts_defaults(),
    )
    d.row("InfluxDB writes")
    d.panel(
        "timeseries",
        "Write latency",
        [
            prom(
                f"histogram_quantile({q}, sum by (le) "
                f"(rate(chargewatch_influx_write_seconds_bucket{{{sel}}}[{ri}])))",
                ref,
                legend=f"p{int(q * 100)}",
            )
            for ref, q in (("A", 0.5), ("B", 0.95), ("C", 0.99))
        ],
        w=8,
        unit="s",
        options=ts_opts(),
        defaults=ts_defaults(),
    )
    d.panel(
        "timeseries",
        "Lines written and write errors",
        [
            prom(
                f"sum(rate(chargewatch_influx_lines_written_total{{{sel}}}[{ri}]))",
                legend="lines/s",
            ),
            prom(
                f"sum by (reason) (rate(chargewatch_influx_write_errors_total{{{sel}}}[{ri}]))",
                "B",
                legend="errors {{reason}}",
            ),
        ],
        w=8,
        unit="ops",
        options=ts_opts(),
        defaults=ts_defaults(),
        overrides=[
            {
                "matcher": {"id": "byFrameRefID", "options": "B"},
                "properties": [
                    {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
                    {"id": "custom.axisPlacement", "value": "right"},
                ],
            }
        ],
    )
    d.panel(
        "timeseries",
        "Spool and dead letters",
        [
            prom(f"sum(chargewatch_influx_spool_bytes{{{sel}}})", legend="InfluxDB spool"),
            prom(f"sum(chargewatch_deadletter_bytes{{{sel}}})", "B", legend="dead letters"),
        ],
        w=8,
        unit="bytes",
        description="The spool holds lines InfluxDB has not accepted yet; it grows only "
        "while writes fail or lag.",
        options=ts_opts(),
        defaults=ts_defaults(),
    )
    d.row("Rules and alerts")
    d.panel(
        "timeseries",
        "Rule evaluation time",
        [
            prom(
                f"histogram_quantile({q}, sum by (le) "
                f"(rate(chargewatch_rule_evaluation_seconds_bucket{{{sel}}}[{ri}])))",
                ref,
                legend=f"p{int(q * 100)}",
            )
            for ref, q in (("A", 0.5), ("B", 0.99))
        ],
        w=8,
        unit="s",
        options=ts_opts(),
        defaults=ts_defaults(),
    )
    d.panel(
        "timeseries",
        "Alerts firing",
        [
            prom(
                f'sum by (severity) (chargewatch_alerts{{{sel}, state="firing"}})',
                legend="charger alerts {{severity}}",
            ),
            prom(
                'sum by (alertname) (ALERTS{alertstate="firing", alertname=~"Chargewatch.*"})',
                "B",
                legend="collector: {{alertname}}",
            ),
        ],
        w=8,
        unit="none",
        options=ts_opts(),
        defaults=ts_defaults(),
    )
    d.panel(
        "timeseries",
        "Notifications",
        [
            prom(
                f"sum by (receiver) (rate(chargewatch_notifications_sent_total{{{sel}}}[{ri}]))",
                legend="sent {{receiver}}",
            ),
            prom(
                f"sum by (receiver) (rate(chargewatch_notifications_failed_total{{{sel}}}[{ri}]))",
                "B",
                legend="failed {{receiver}}",
            ),
        ],
        w=8,
        unit="ops",
        options=ts_opts(),
        defaults=ts_defaults(),
    )
    return d


DASHBOARDS = {
    "fleet-overview.json": fleet_overview,
    "charger-detail.json": charger_detail,
    "sessions-revenue.json": sessions_revenue,
    "faults-reliability.json": faults_reliability,
    "collector-health.json": collector_health,
}


def render() -> dict[str, str]:
    return {
        name: json.dumps(build().to_json(), indent=2, ensure_ascii=False) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if dashboards/ is stale")
    args = parser.parse_args()
    stale = []
    for name, text in render().items():
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale: {', '.join(stale)}; run python scripts/build_dashboards.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
