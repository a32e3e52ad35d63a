#!/usr/bin/env python3
"""Writes the Grafana dashboards in dashboards/ from their sources in dashboards/src/.

Each dashboard is described as data, one YAML file per dashboard
(``dashboards/src/<name>.yaml`` becomes ``dashboards/<name>.json``): its
variables and its panels in reading order, each with title, type, size,
unit, thresholds and queries. ``dashboards/src/_vocabulary.yaml`` holds what
the five share: datasource uids, query fragments, the status and severity
colours. This script only knows the shape Grafana wants (schema 39); what the
dashboards show is in the sources. Edit a source, run this, commit both;
tests/deploy/test_dashboards.py fails when the JSON and the sources disagree.

Source syntax (beyond Grafana's own option names, passed through):
  ``@NAME`` in any string     a fragment from the vocabulary, the dashboard's
                              ``let:`` or the current ``each:`` item
  ``each: <list or name>``    on a target or override: one copy per item
  ``- row: Title``            a row header; panels flow left to right on the
                              24-column grid (``w``/``h``, default 12 x 8)

Usage: python scripts/build_dashboards.py [--check]
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "dashboards"
SRC = OUT / "src"
VOCABULARY = SRC / "_vocabulary.yaml"

GRID_WIDTH = 24
#: Panel types drawn from thresholds, and the options every panel of a type starts from.
THRESHOLD_COLOURED = ("stat", "gauge", "bargauge")
OPTION_PRESETS: dict[str, dict[str, Any]] = {
    "stat": {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value",
        "graphMode": "area",
        "textMode": "value",
        "justifyMode": "auto",
        "orientation": "auto",
    },
    "timeseries": {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    },
    "bargauge": {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "orientation": "horizontal",
        "displayMode": "basic",
        "showUnfilled": True,
    },
    "table": {"showHeader": True},
}
BUILTIN_ANNOTATION = {
    "builtIn": 1,
    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Annotations & Alerts",
    "type": "dashboard",
}
#: Panel types whose InfluxDB queries are read as tables rather than series.
TABLE_RESULTS = ("table", "barchart")


class _At(string.Template):
    delimiter = "@"


def substitute(obj: Any, names: Mapping[str, Any]) -> Any:
    """``obj`` with every ``@NAME`` in its strings replaced that ``names`` holds.

    Others are left for a later pass (an ``each:`` item's names are known only
    when it is expanded); render() fails on any left over at the end.
    """
    if isinstance(obj, str):
        return _At(obj).safe_substitute({k: str(v) for k, v in names.items()})
    if isinstance(obj, list):
        return [substitute(v, names) for v in obj]
    if isinstance(obj, dict):
        return {k: substitute(v, names) for k, v in obj.items()}
    return obj


def expand_each(items: list[Any], vocab: Mapping[str, Any]) -> list[Any]:
    """Items with ``each:`` replaced by one copy per entry of their list."""
    out: list[Any] = []
    for item in items:
        if not isinstance(item, dict) or "each" not in item:
            out.append(item)
            continue
        body = {k: v for k, v in item.items() if k != "each"}
        entries = item["each"]
        if isinstance(entries, str):
            entries = vocab["lists"][entries]
        out += [substitute(body, entry) for entry in entries]
    return out


# -- layout ---------------------------------------------------------------------------------


class Layout:
    """Places panels left to right on Grafana's grid, wrapping when a row is full."""

    def __init__(self) -> None:
        self.x = self.y = self.row_h = 0

    def place(self, w: int, h: int) -> dict[str, int]:
        if self.x + w > GRID_WIDTH:
            self.newline()
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def newline(self) -> None:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0


# -- panels ---------------------------------------------------------------------------------


def targets(spec: Mapping[str, Any], vocab: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The panel's queries with refIds A, B, ... in order."""
    ds = vocab["datasources"]
    out: list[dict[str, Any]] = []
    for i, t in enumerate(expand_each(spec.get("influx", []), vocab)):
        target = {
            "refId": chr(ord("A") + i),
            "datasource": ds["influx"],
            "rawQuery": True,
            "query": t["query"],
            "resultFormat": "table" if spec["type"] in TABLE_RESULTS else "time_series",
        }
        if t.get("alias"):
            target["alias"] = t["alias"]
        out.append(target)
    for i, t in enumerate(expand_each(spec.get("prom", []), vocab)):
        out.append(
            {
                "refId": chr(ord("A") + i),
                "datasource": ds["prom"],
                "expr": t["expr"],
                "legendFormat": t.get("legend") or "__auto",
                "range": True,
            }
        )
    return out


def thresholds(steps: list[list[Any]]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


def value_mappings(spec: Any, vocab: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``statuses`` (the OCPP status colours) or a mapping of value to text and colour."""
    if spec == "statuses":
        options = {
            str(s["code"]): {"text": s["name"], "color": s["colour"], "index": i}
            for i, s in enumerate(vocab["lists"]["statuses"])
        }
    else:
        options = {str(k): {"text": v["text"], "color": v["color"]} for k, v in spec.items()}
    return [{"type": "value", "options": options}]


def timeseries_custom(draw: str) -> dict[str, Any]:
    """Line or bar drawing; ``stacked`` and ``stacked-bars`` stack the series."""
    bars = draw == "stacked-bars"
    custom: dict[str, Any] = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 60 if bars else 10,
        "showPoints": "never",
        "spanNulls": False,
    }
    if draw.startswith("stacked"):
        custom["stacking"] = {"mode": "normal", "group": "A"}
    return custom


def field_defaults(spec: Mapping[str, Any], vocab: Mapping[str, Any]) -> dict[str, Any]:
    kind = spec["type"]
    coloured = kind in THRESHOLD_COLOURED or spec.get("color") == "thresholds"
    fd: dict[str, Any] = {"color": {"mode": "thresholds" if coloured else "palette-classic"}}
    if kind in THRESHOLD_COLOURED or "thresholds" in spec:
        fd["thresholds"] = thresholds(spec.get("thresholds", [["blue", None]]))
    for key in ("unit", "decimals"):
        if key in spec:
            fd[key] = spec[key]
    if kind == "timeseries":
        fd["custom"] = timeseries_custom(spec.get("draw", "lines"))
    for key in ("min", "max"):
        if key in spec:
            fd[key] = spec[key]
    if "mappings" in spec:
        fd["mappings"] = value_mappings(spec["mappings"], vocab)
    return fd


def override(spec: Any, vocab: Mapping[str, Any]) -> dict[str, Any]:
    """``{byName|byRegexp|byFrameRefID: match, color, unit, decimals, axis}`` or a preset name."""
    if isinstance(spec, str):
        return dict(vocab["overrides"][spec])
    (matcher,) = [k for k in spec if k.startswith("by")]
    props: list[dict[str, Any]] = []
    if "color" in spec:
        props.append({"id": "color", "value": {"mode": "fixed", "fixedColor": spec["color"]}})
    props += [{"id": k, "value": spec[k]} for k in ("unit", "decimals") if k in spec]
    if "axis" in spec:
        props.append({"id": "custom.axisPlacement", "value": spec["axis"]})
    return {"matcher": {"id": matcher, "options": spec[matcher]}, "properties": props}


def panel(
    spec: Mapping[str, Any], pid: int, layout: Layout, vocab: Mapping[str, Any]
) -> dict[str, Any]:
    tg = targets(spec, vocab)
    overrides = [override(o, vocab) for o in expand_each(spec.get("overrides", []), vocab)]
    p: dict[str, Any] = {
        "id": pid,
        "type": spec["type"],
        "title": spec["title"],
        "datasource": tg[0]["datasource"],
        "gridPos": layout.place(spec.get("w", 12), spec.get("h", 8)),
        "targets": tg,
        "fieldConfig": {"defaults": field_defaults(spec, vocab), "overrides": overrides},
        "options": {**OPTION_PRESETS.get(spec["type"], {}), **spec.get("options", {})},
    }
    for key in ("description", "transformations", "interval"):
        if key in spec:
            p[key] = spec[key]
    if "time_from" in spec:
        p["timeFrom"] = spec["time_from"]
        p["hideTimeOverride"] = False
    return p


def row(title: str, pid: int, layout: Layout) -> dict[str, Any]:
    layout.newline()
    pos = layout.place(GRID_WIDTH, 1)
    layout.newline()
    return {
        "id": pid,
        "type": "row",
        "title": title,
        "gridPos": pos,
        "collapsed": False,
        "panels": [],
    }


# -- dashboard ------------------------------------------------------------------------------


def variable(spec: Any, vocab: Mapping[str, Any]) -> dict[str, Any]:
    """A query variable on InfluxDB (``influx:``) or Prometheus (``prom:``); presets by name."""
    if isinstance(spec, str):
        spec = substitute({"name": spec, **vocab["variables"][spec]}, vocab["fragments"])
    source = "influx" if "influx" in spec else "prom"
    return {
        "name": spec["name"],
        "label": spec["label"],
        "type": "query",
        "datasource": vocab["datasources"][source],
        "query": spec[source],
        "definition": spec[source],
        "refresh": 1,  # on dashboard load: new chargers appear without a redeploy
        "multi": spec.get("multi", True),
        "includeAll": spec.get("include_all", True),
        "sort": 1,
        "current": {},
        "options": [],
        "hide": 0,
    }


def annotation(spec: Mapping[str, Any], vocab: Mapping[str, Any]) -> dict[str, Any]:
    """An InfluxDB annotation query: one marker per row."""
    return {
        "name": spec["name"],
        "datasource": vocab["datasources"]["influx"],
        "enable": True,
        **{k: spec[k] for k in ("iconColor", "query", "textColumn", "tagsColumn", "titleColumn")},
    }


def fragments(source: Mapping[str, Any], vocab: Mapping[str, Any]) -> dict[str, Any]:
    """The vocabulary's fragments plus the dashboard's ``let:``, each resolved in order."""
    names = dict(vocab["fragments"])
    for key, value in source.get("let", {}).items():
        names[key] = substitute(value, names)
    return names


def dashboard(source: Mapping[str, Any], vocab: Mapping[str, Any]) -> dict[str, Any]:
    src = substitute({k: v for k, v in source.items() if k != "let"}, fragments(source, vocab))
    layout, panels = Layout(), []
    for pid, spec in enumerate(src["panels"], start=1):
        is_row = "row" in spec
        panels.append(row(spec["row"], pid, layout) if is_row else panel(spec, pid, layout, vocab))
    return {
        "uid": src["uid"],
        "title": src["title"],
        "description": src["description"],
        "tags": ["chargewatch", *src["tags"]],
        "editable": True,
        "graphTooltip": 1,  # shared crosshair
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": src.get("time_from", "now-6h"), "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "refresh": src.get("refresh", "1m"),
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "links": vocab["links"],
        "annotations": {
            "list": [BUILTIN_ANNOTATION]
            + [annotation(a, vocab) for a in src.get("annotations", [])]
        },
        "templating": {"list": [variable(v, vocab) for v in src.get("variables", [])]},
        "panels": panels,
    }


def _load(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text(encoding="utf-8")))


def sources() -> list[Path]:
    """The dashboards' sources: every YAML in dashboards/src/ but the shared vocabulary."""
    return sorted(p for p in SRC.glob("*.yaml") if not p.name.startswith("_"))


def render() -> dict[str, str]:
    """File name in dashboards/ -> its JSON text, as committed."""
    vocab = _load(VOCABULARY)
    out = {}
    for path in sources():
        text = json.dumps(dashboard(_load(path), vocab), indent=2, ensure_ascii=False) + "\n"
        if "@" in text:  # no dashboard uses the character: a name that was never defined
            raise ValueError(f"{path.name}: unknown @name near {text[text.index('@') :][:40]!r}")
        out[f"{path.stem}.json"] = text
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
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
