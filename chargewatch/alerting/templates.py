"""Annotation and label templates, rendered without executing anything.

Operators write Prometheus-style templates: ``{{ $labels.charger }}``,
``{{ $value | humanize }}``, ``{{ printf "%.1f" $value }}``, and the bare
shorthands ``$labels.charger`` and ``$value``. ``$signals.NAME`` reads one
signal of the alert's connector at the evaluation (a voltage, a temperature,
how long a detector's episode has lasted), so a text can say what happened in
physical units rather than quote a detector's score; names are checked against
the signal catalogue when the rules load. Only that small vocabulary is
understood; anything else is a load-time error, so a rule file can never run
code (Go templates, and Jinja, can).

Output is bounded too: a template is at most :data:`MAX_TEMPLATE_CHARS` long,
printf widths and precisions at most :data:`MAX_FORMAT_WIDTH` (checked at
load), and a rendering longer than :data:`MAX_RENDERED_CHARS` is cut with a
marker, so one annotation cannot grow alert state, logs and notifications by
megabytes per alert.
"""

from __future__ import annotations

__all__ = [
    "FILTERS",
    "MAX_FORMAT_WIDTH",
    "MAX_RENDERED_CHARS",
    "MAX_TEMPLATE_CHARS",
    "TRUNCATED",
    "SignalLookup",
    "Template",
    "TemplateError",
]

import difflib
import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from chargewatch.alerting.expr import format_duration


class TemplateError(ValueError):
    def __init__(self, message: str, pos: int) -> None:
        self.message = message
        self.pos = pos
        super().__init__(f"{message} (at column {pos + 1})")


def _humanize(v: float) -> str:
    if math.isnan(v) or math.isinf(v):
        return str(v)
    for size, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= size:
            return f"{v / size:.4g}{prefix}"
    return f"{v:.4g}"


def _humanize_duration(v: float) -> str:
    if math.isnan(v) or math.isinf(v):
        return str(v)
    # Whole seconds from 1 s up: "1m0s", not "1m180ms" (the receive jitter).
    a = abs(v) if abs(v) < 1.0 else float(math.floor(abs(v) + 0.5))
    return ("-" if v < 0 else "") + format_duration(round(a, 3))


def _humanize_percentage(v: float) -> str:
    return f"{v * 100:.4g}%"


def _thousands(v: float) -> str:
    """1875554.4 -> "1,875,554": register readings an operator compares by eye."""
    if math.isnan(v) or math.isinf(v):
        return str(v)
    return f"{v:,.0f}"


FILTERS: dict[str, Callable[[float], str]] = {
    "humanize": _humanize,
    "humanizeDuration": _humanize_duration,
    "humanizePercentage": _humanize_percentage,
    "thousands": _thousands,
}
_STRING_FILTERS: dict[str, Callable[[str], str]] = {
    "toUpper": str.upper,
    "toLower": str.lower,
    "title": str.title,
}

# A unit written right after a block ("{{ ... }}W", "{{ ... }} %"): a known value
# is set apart from it by a space, SI prefix and all ("11.05k" + "W" is
# "11.05 kW"); an unknown value drops it ("unknown", not "unknown %").
_UNIT_RE = re.compile(r"^ ?(?:°C/min|°C|%|(?:Wh|W|kWh|kW|VA|var|V|A|Hz)(?![A-Za-z]))")
_PREFIXED_RE = re.compile(r"(?<=\d)([kMGT]?)$")


def _unit_apart(value: str, after: str) -> str:
    """``value`` with a space before the unit that ``after`` starts with."""
    if not after or after[0] == " " or not _UNIT_RE.match(after):
        return value
    return _PREFIXED_RE.sub(r" \1", value, count=1) if _PREFIXED_RE.search(value) else value


# A summary or description is a few hundred characters; these leave room.
MAX_TEMPLATE_CHARS = 4096
MAX_RENDERED_CHARS = 4096
TRUNCATED = " [truncated]"
# Width and precision of a printf verb: %8.2f is typical, %999999999d a bomb.
MAX_FORMAT_WIDTH = 100

_PRINTF_RE = re.compile(r"%([-+ 0#]*\d*(?:\.\d+)?)([dfeEgGsvx%])", re.ASCII)
_WIDTH_RE = re.compile(r"[-+ 0#]*(\d*)(?:\.(\d+))?", re.ASCII)
# Go's escapes in an interpreted string literal.
_ESCAPE_RE = re.compile(
    r"""\\(?:(?P<char>[abfnrtv\\'"])|x(?P<x>[0-9A-Fa-f]{2})|(?P<oct>[0-7]{3})"""
    r"|u(?P<u>[0-9A-Fa-f]{4})|U(?P<U>[0-9A-Fa-f]{8}))"
)
_CHAR_ESCAPES = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
    "\\": "\\", "'": "'", '"': '"',
}  # fmt: skip
_BLOCK_RE = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
_BARE_RE = re.compile(
    r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)|\$signals\.([A-Za-z_][A-Za-z0-9_]*)|\$value\b"
)
_TERM_RE = re.compile(
    r"\s*(?:(?P<label>\$labels\.[A-Za-z_][A-Za-z0-9_]*|\.Labels\.[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<signal>\$signals\.[A-Za-z_][A-Za-z0-9_]*|\.Signals\.[A-Za-z_][A-Za-z0-9_]*)"
    r'|(?P<value>\$value|\.Value)|(?P<str>"(?:[^"\\]|\\.)*")|(?P<word>[A-Za-z_][A-Za-z0-9_]*)'
    r"|(?P<pipe>\|))"
)


@dataclass(frozen=True)
class _Arg:
    kind: str  # label, signal, value, str
    text: str


@dataclass(frozen=True)
class _Block:
    head: _Arg
    funcs: tuple[tuple[str, str], ...]  # (name, printf format or "")


def _printf(fmt: str, v: float | str) -> str:
    def one(m: re.Match[str]) -> str:
        flags, verb = m.group(1), m.group(2)
        if verb == "%":
            return "%"
        if verb in "sv":
            return format(_plain(v), flags.replace("#", "") + "s") if flags else _plain(v)
        x = float(v) if not isinstance(v, float) else v
        if verb == "d":
            return format(
                int(x) if math.isfinite(x) else x, flags + ("d" if math.isfinite(x) else "")
            )
        if verb == "x":
            return format(int(x), flags + "x") if math.isfinite(x) else str(x)
        return format(x, flags + verb)

    try:
        return _PRINTF_RE.sub(one, fmt)
    except (ValueError, TypeError):
        return f"%!({fmt})"


def _unescape(text: str, pos: int) -> str:
    """Go's escapes in ``text`` (a string literal's inside starting at ``pos``)."""
    out: list[str] = []
    i = 0
    while (j := text.find("\\", i)) >= 0:
        out.append(text[i:j])
        m = _ESCAPE_RE.match(text, j)
        code = -1
        if m is not None:
            if m.group("char"):
                out.append(_CHAR_ESCAPES[m.group("char")])
            else:
                digits = m.group("x") or m.group("u") or m.group("U")
                code = int(digits, 16) if digits else int(m.group("oct"), 8)
        valid = 0 <= code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF
        if m is None or (code >= 0 and not valid) or (m.group("oct") and code > 255):
            raise TemplateError(
                f"bad escape {text[j : j + 2]} in a string; "
                'use \\n, \\t, \\\\, \\", \\xHH or \\uHHHH',
                pos + j,
            )
        if code >= 0:
            out.append(chr(code))
        i = m.end()
    out.append(text[i:])
    return "".join(out)


def _check_format(fmt: str, pos: int) -> None:
    """Refuse printf widths and precisions beyond MAX_FORMAT_WIDTH."""
    for m in _PRINTF_RE.finditer(fmt):
        spec = _WIDTH_RE.fullmatch(m.group(1))
        assert spec is not None  # _PRINTF_RE's group 1 has this shape
        for n in spec.groups(default=""):
            # len() first: int() of a 5,000-digit width raises ValueError.
            if n and (len(n) > 4 or int(n) > MAX_FORMAT_WIDTH):
                raise TemplateError(
                    f"printf width or precision {n if len(n) <= 12 else n[:12] + '...'} "
                    f"in {m.group()[:20]!r}; at most {MAX_FORMAT_WIDTH}",
                    pos + m.start(),
                )


def _plain(v: float | str) -> str:
    if isinstance(v, float):
        return (
            f"{v:g}"
            if math.isfinite(v) and v != int(v)
            else (str(int(v)) if math.isfinite(v) else str(v))
        )
    return v


#: A connector's signal by name at the evaluation being rendered: a number
#: (NaN when unknown) or a string ("" when unknown).
SignalLookup = Callable[[str], "float | str"]


def _no_signals(name: str) -> float | str:
    return math.nan


class Template:
    """A parsed template; :meth:`render` never fails.

    ``signals``: the names ``$signals.NAME`` may use (None: any). An unknown
    name is a load-time error, as in an expression.
    """

    def __init__(self, text: str, signals: Collection[str] | None = None) -> None:
        if len(text) > MAX_TEMPLATE_CHARS:
            raise TemplateError(f"template longer than {MAX_TEMPLATE_CHARS} characters", 0)
        self.text = text
        self.parts: list[str | _Block] = []
        pos = 0
        for m in _BLOCK_RE.finditer(text):
            self._literal(text[pos : m.start()], pos)
            self.parts.append(self._block(m.group(1), m.start(1)))
            pos = m.end()
        rest = text[pos:]
        if "{{" in rest:
            raise TemplateError("'{{' without a closing '}}'", pos + rest.index("{{"))
        self._literal(rest, pos)
        #: Whether the text depends on the value, or only on the labels (and so
        #: renders the same for an alert at every evaluation).
        self.uses_value = any(isinstance(p, _Block) and p.head.kind == "value" for p in self.parts)
        #: The signals the text reads, in order of first use.
        self.signals: tuple[str, ...] = tuple(
            dict.fromkeys(
                p.head.text for p in self.parts if isinstance(p, _Block) and p.head.kind == "signal"
            )
        )
        if signals is not None:
            known = set(signals)
            for name in self.signals:
                if name not in known:
                    close = difflib.get_close_matches(name, sorted(known), n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    raise TemplateError(
                        f"unknown signal {name!r} in $signals{hint}", text.find(name)
                    )

    @property
    def dynamic(self) -> bool:
        """Renders differently at each evaluation (reads ``$value`` or signals)."""
        return self.uses_value or bool(self.signals)

    def _literal(self, text: str, offset: int) -> None:
        # The bare $labels.x / $value shorthands outside {{ }}.
        pos = 0
        for m in _BARE_RE.finditer(text):
            if m.start() > pos:
                self.parts.append(text[pos : m.start()])
            if m.group(1):
                arg = _Arg("label", m.group(1))
            elif m.group(2):
                arg = _Arg("signal", m.group(2))
            else:
                arg = _Arg("value", "")
            self.parts.append(_Block(arg, ()))
            pos = m.end()
        if pos < len(text):
            self.parts.append(text[pos:])

    def _block(self, body: str, offset: int) -> _Block:
        tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(body):
            m = _TERM_RE.match(body, pos)
            if m is None or m.end() == pos:
                if body[pos:].strip() == "":
                    break
                raise TemplateError(
                    f"unsupported template syntax {body[pos:].strip()!r}; use $labels.NAME, "
                    "$signals.NAME, $value, printf and "
                    + ", ".join(sorted({*FILTERS, *_STRING_FILTERS})),
                    offset + pos,
                )
            kind = m.lastgroup or ""
            tokens.append((kind, m.group(kind), offset + m.start(kind)))
            pos = m.end()
        if not tokens:
            raise TemplateError("empty {{ }}", offset)
        # Split into pipeline stages: "head | f | g" or "f args | g".
        stages: list[list[tuple[str, str, int]]] = [[]]
        for tok in tokens:
            if tok[0] == "pipe":
                stages.append([])
            else:
                stages[-1].append(tok)
        head: _Arg | None = None
        funcs: list[tuple[str, str]] = []
        for i, stage in enumerate(stages):
            if not stage:
                raise TemplateError("empty pipeline stage", offset)
            args = [t for t in stage if t[0] != "word"]
            words = [t for t in stage if t[0] == "word"]
            if len(words) > 1:
                raise TemplateError(
                    f"one function per stage, got {[w[1] for w in words]}", words[1][2]
                )
            if words:
                fname, fpos = words[0][1], words[0][2]
                if fname not in FILTERS and fname not in _STRING_FILTERS and fname != "printf":
                    raise TemplateError(f"unknown template function {fname!r}", fpos)
                fmt = ""
                if fname == "printf":
                    if not args or args[0][0] != "str":
                        raise TemplateError(
                            'printf needs a format string, e.g. printf "%.1f"', fpos
                        )
                    fmt = _unescape(args[0][1][1:-1], args[0][2] + 1)
                    _check_format(fmt, args[0][2] + 1)
                    args = args[1:]
                if i == 0:
                    if len(args) != 1 or args[0][0] == "str":
                        raise TemplateError(
                            f"{fname} needs $value, $labels.NAME or $signals.NAME", fpos
                        )
                    head = self._arg(args[0])
                elif args:
                    raise TemplateError(
                        "a piped function takes its input from the pipe", args[0][2]
                    )
                funcs.append((fname, fmt))
            else:
                if i != 0 or len(args) != 1:
                    raise TemplateError("expected a function after '|'", stage[0][2])
                head = self._arg(args[0])
        assert head is not None
        return _Block(head, tuple(funcs))

    @staticmethod
    def _arg(tok: tuple[str, str, int]) -> _Arg:
        kind, text, _ = tok
        if kind in ("label", "signal"):
            return _Arg(kind, text.split(".")[-1])
        if kind == "value":
            return _Arg("value", "")
        return _Arg("str", text[1:-1])

    def render(
        self, labels: Mapping[str, str], value: float, signals: SignalLookup = _no_signals
    ) -> str:
        out: list[str] = []
        unknown = False  # the block just rendered was an unknown value
        for i, part in enumerate(self.parts):
            if isinstance(part, str):
                out.append(_UNIT_RE.sub("", part, count=1) if unknown else part)
                unknown = False
                continue
            unknown = False
            v: float | str
            if part.head.kind == "label":
                v = labels.get(part.head.text, "")
            elif part.head.kind == "value":
                v = value
            elif part.head.kind == "signal":
                v = signals(part.head.text)
                if (isinstance(v, float) and math.isnan(v)) or v == "":
                    # Not reported (a charger without a temperature sensor): said
                    # in words, not as "NaN" or a formatted gap.
                    out.append("unknown")
                    unknown = True
                    continue
            else:
                v = part.head.text
            for fname, fmt in part.funcs:
                if fname == "printf":
                    v = _printf(fmt, v)
                elif fname in FILTERS:
                    try:
                        v = FILTERS[fname](float(v))
                    except ValueError:
                        v = str(v)
                else:
                    v = _STRING_FILTERS[fname](_plain(v))
            after = self.parts[i + 1] if i + 1 < len(self.parts) else ""
            out.append(_unit_apart(_plain(v), after if isinstance(after, str) else ""))
        text = "".join(out)
        if len(text) > MAX_RENDERED_CHARS:
            return text[: MAX_RENDERED_CHARS - len(TRUNCATED)] + TRUNCATED
        return text
