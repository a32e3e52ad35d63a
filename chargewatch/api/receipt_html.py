"""The driver's receipt and monthly statement as HTML pages (jinja2, autoescaped).

Ids, names and addresses are user data: every value goes through autoescape,
and the only markup not from a template is the power curve's SVG, built here
from numbers. The operator's logo is a file (PNG, JPEG, SVG) read once and
embedded as a ``data:`` URI, so a saved receipt shows it offline.
"""

from __future__ import annotations

__all__ = ["logo_uri", "power_svg", "render_receipt", "render_statement"]

import base64
import functools
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}
_W, _H, _PAD = 640, 220, 64  # the power curve's drawing box (px)


@functools.cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=True,  # ids and names are user data
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = _money
    env.filters["num"] = _num
    return env


def _money(value: Any) -> str:
    if value is None:
        return "–"
    return f"{Decimal(value).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,.2f}"


def _num(value: Any, places: int = 2) -> str:
    if value is None:
        return "–"
    q = Decimal(1).scaleb(-places)
    return f"{Decimal(value).quantize(q, rounding=ROUND_HALF_UP):,}"


@functools.cache
def logo_uri(path: str) -> str:
    """The logo file as a data: URI; "" when unset, unreadable or not an image type."""
    if not path:
        return ""
    p = Path(path)
    mime = _MIME.get(p.suffix.lower())
    try:
        return f"data:{mime};base64,{base64.b64encode(p.read_bytes()).decode()}" if mime else ""
    except OSError:
        return ""


def _t(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def power_svg(curve: list[dict[str, Any]], labels: tuple[str, str] = ("", "")) -> Markup:
    """A step chart of average power per period (kW); empty when there is none."""
    if not curve:
        return Markup("")
    t0, t1 = _t(curve[0]["start"]), _t(curve[-1]["end"])
    span = max(t1 - t0, 1.0)
    peak = max(float(p["kw"]) for p in curve)
    top = max(peak, 0.1) * 1.15
    inner_w, inner_h = _W - 2 * _PAD, _H - 2 * _PAD

    def x(t: float) -> float:
        return _PAD + (t - t0) / span * inner_w

    def y(kw: float) -> float:
        return _PAD + inner_h - kw / top * inner_h

    pts = [f"{x(t0):.1f},{y(0):.1f}"]
    for p in curve:
        kw = float(p["kw"])
        pts += [f"{x(_t(p['start'])):.1f},{y(kw):.1f}", f"{x(_t(p['end'])):.1f},{y(kw):.1f}"]
    pts.append(f"{x(t1):.1f},{y(0):.1f}")
    return Markup(
        f'<svg class="curve" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="Charging power over the session, up to {peak:.1f} kW">'
        f'<line x1="{_PAD}" y1="{y(0):.1f}" x2="{_W - _PAD}" y2="{y(0):.1f}" class="axis"/>'
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{y(0):.1f}" class="axis"/>'
        f'<polygon points="{" ".join(pts)}" class="area"/>'
        f'<text x="{_PAD - 6}" y="{y(peak) + 4:.1f}" text-anchor="end">{peak:.1f} kW</text>'
        f'<text x="{_PAD - 6}" y="{y(0) + 4:.1f}" text-anchor="end">0</text>'
        f'<text x="{_PAD}" y="{_H - 12}">{escape(labels[0])}</text>'
        f'<text x="{_W - _PAD}" y="{_H - 12}" text-anchor="end">{escape(labels[1])}</text>'
        "</svg>"
    )


def render_receipt(doc: dict[str, Any], *, bundle_href: str = "receipt/bundle.xml") -> str:
    when = doc["when"]
    labels = (
        when["start"]["time"] if when["start"] else "",
        when["stop"]["time"] if when["stop"] else "",
    )
    return (
        _env()
        .get_template("receipt.html.j2")
        .render(
            r=doc,
            logo=logo_uri(doc["operator"].get("logo", "")),
            curve=power_svg(doc["power_curve"], labels),
            bundle_href=bundle_href,
        )
    )


def render_statement(doc: dict[str, Any]) -> str:
    return (
        _env()
        .get_template("statement.html.j2")
        .render(s=doc, logo=logo_uri(doc["operator"].get("logo", "")))
    )
