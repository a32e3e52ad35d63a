"""The rule expression language: tokenizer, Pratt parser, type check, numpy compiler.

An expression is evaluated once per group evaluation over *all* connectors at
once; the result is one boolean per connector (the alert condition) and one
number per connector (the alert's ``$value``).

Grammar (lowest precedence first)::

    expr     := expr 'or' expr | expr 'and' expr | 'not' expr
              | sum (('==' | '!=' | '<' | '<=' | '>' | '>=') sum)?
              | sum 'in' '(' STRING (',' STRING)* ')'
    sum      := sum ('+' | '-') term | term
    term     := term ('*' | '/' | '%') unary | unary
    unary    := '-' unary | atom
    atom     := NUMBER | DURATION | STRING | 'true' | 'false' | SIGNAL
              | FUNC '(' args ')' | '(' expr ')'

``DURATION`` is a number of seconds written with a unit (``90s``, ``5m``,
``1h30m``). Functions: ``abs(x)``, ``present(x)`` and the window functions
``avg_over``, ``min_over``, ``max_over``, ``rate``, ``delta``, ``changes``,
``absent_for`` and ``stale_for``, each ``f(SIGNAL, DURATION)``.

Missing data never looks "normal": arithmetic on NaN gives NaN and every
comparison with NaN (``!=`` included) is false, so an unknown value neither
fires nor resolves a condition on its own.
"""

from __future__ import annotations

__all__ = [
    "FUNCTIONS",
    "MAX_DURATION_S",
    "MAX_NESTING",
    "WINDOW_FUNCTIONS",
    "CompiledExpr",
    "ExprError",
    "History",
    "compile_expr",
    "format_duration",
    "parse",
    "parse_duration",
]

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chargewatch.alerting.signals import SIGNALS, Frame, Kind, Signal, frame_length
from chargewatch.model.events import CONNECTOR_STATUSES, ERROR_CODES


class ExprError(ValueError):
    """An expression that cannot be parsed or type-checked; ``pos`` is 0-based."""

    def __init__(self, message: str, pos: int, text: str = "") -> None:
        self.message = message
        self.pos = pos
        self.text = text
        super().__init__(f"{message} (at column {pos + 1})")


# ---------------------------------------------------------------- durations

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
# re.ASCII: \d would also match other scripts' digits ("٣m"), which float() and
# int() then read; rule files are ASCII where they hold numbers.
_DURATION_RE = re.compile(r"(?:\d+(?:ms|s|m|h|d|w))+", re.ASCII)
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)", re.ASCII)


# Ten years: beyond any alert's `for`, window or test; a 300-digit duration
# would otherwise overflow float conversion (or int's 4,300-digit limit).
MAX_DURATION_S = 10 * 365 * 86400.0


def parse_duration(text: str) -> float:
    """``"1h30m"`` -> 5400.0 seconds (Prometheus's duration syntax). ValueError if bad."""
    text = text.strip()
    if not _DURATION_RE.fullmatch(text):
        shown = text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"
        raise ValueError(f"not a duration: {shown!r} (expected e.g. 30s, 5m, 1h30m)")
    total = 0.0
    for number, unit in _DURATION_PART.findall(text):
        digits = number.lstrip("0") or "0"
        # Sixteen digits are past the bound in any unit: stop before int() and
        # float() meet a 300-digit number (OverflowError, or int's own limit).
        total += int(digits) * _DURATION_UNITS[unit] if len(digits) < 16 else float("inf")
    if total > MAX_DURATION_S:
        raise ValueError(f"duration longer than the maximum of {MAX_DURATION_S / 86400:.0f}d")
    return total


def format_duration(seconds: float) -> str:
    """5400.0 -> ``"1h30m"``; the inverse of :func:`parse_duration` for whole seconds."""
    if seconds == 0:
        return "0s"
    out = ""
    rest = round(seconds * 1000)
    for unit, size in (("w", 604800000), ("d", 86400000), ("h", 3600000), ("m", 60000)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    if rest >= 1000:
        out += f"{rest // 1000}s"
        rest %= 1000
    if rest:
        out += f"{rest}ms"
    return out


# ---------------------------------------------------------------- tokens

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<duration>(?:\d+(?:ms|s|m|h|d|w))+(?![A-Za-z0-9_]))
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![A-Za-z_]))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=|<=|>=|<|>|\+|-|\*|/|%|\(|\)|,)
    """,
    re.VERBOSE | re.ASCII,
)

_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false"})
_HINTS = {"&&": "and", "||": "or", "!": "not", "=": "=="}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # number, duration, string, ident, keyword, op, end
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            for bad, good in _HINTS.items():
                if text.startswith(bad, pos):
                    raise ExprError(f"unexpected {bad!r}; write {good!r}", pos, text)
            if text[pos] in "\"'":
                raise ExprError("unterminated string", pos, text)
            if text[pos].isdigit() and text[pos].isascii():
                raise ExprError(
                    "bad number or duration (units: ms, s, m, h, d, w; e.g. 5m)", pos, text
                )
            raise ExprError(f"unexpected character {text[pos]!r}", pos, text)
        kind = m.lastgroup or ""
        if kind != "ws":
            tok = m.group()
            if kind == "ident" and tok in _KEYWORDS:
                kind = "keyword"
            out.append(Token(kind, tok, pos))
        pos = m.end()
    # Point "unexpected end" at the last character, not past a block scalar's newline.
    out.append(Token("end", "", len(text.rstrip())))
    return out


# ---------------------------------------------------------------- AST


@dataclass(frozen=True, slots=True)
class Node:
    pos: int


@dataclass(frozen=True, slots=True)
class Num(Node):
    value: float


@dataclass(frozen=True, slots=True)
class Str(Node):
    value: str


@dataclass(frozen=True, slots=True)
class BoolLit(Node):
    value: bool


@dataclass(frozen=True, slots=True)
class Name(Node):
    name: str


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str  # "-" or "not"
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class In(Node):
    operand: Node
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Call(Node):
    func: str
    args: tuple[Node, ...]


# Binding powers for the Pratt loop: higher binds tighter.
_INFIX = {
    "or": 1,
    "and": 2,
    "==": 4,
    "!=": 4,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "in": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "%": 6,
}
_NOT_BP = 3
_NEG_BP = 7

# How deep parentheses, operators and calls may nest. Real rules nest a
# handful of levels; parsing, compiling and evaluating all recurse per level,
# so the bound keeps them far from Python's recursion limit.
MAX_NESTING = 100
_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})

WINDOW_FUNCTIONS = frozenset(
    {"avg_over", "min_over", "max_over", "rate", "delta", "changes", "absent_for", "stale_for"}
)
FUNCTIONS = frozenset({"abs", "present"}) | WINDOW_FUNCTIONS


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, message: str, tok: Token) -> ExprError:
        return ExprError(message, tok.pos, self.text)

    def expect(self, text: str) -> Token:
        tok = self.next()
        if tok.text != text or tok.kind == "string":
            got = "end of expression" if tok.kind == "end" else repr(tok.text)
            raise self.fail(f"expected {text!r}, got {got}", tok)
        return tok

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise self.fail("empty expression", self.peek())
        node = self.expr(0)
        tok = self.peek()
        if tok.kind != "end":
            raise self.fail(f"unexpected {tok.text!r} after a complete expression", tok)
        _check_depth(node, self.text)
        return node

    def expr(self, min_bp: int) -> Node:
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                raise self.fail(f"nested more than {MAX_NESTING} levels deep", self.peek())
            return self._expr(min_bp)
        finally:
            self.depth -= 1

    def _expr(self, min_bp: int) -> Node:
        left = self.prefix()
        while True:
            tok = self.peek()
            if tok.kind not in ("op", "keyword") or tok.text not in _INFIX:
                return left
            bp = _INFIX[tok.text]
            if bp <= min_bp:
                return left
            self.next()
            if tok.text == "in":
                left = In(tok.pos, left, self.string_list())
            else:
                right = self.expr(bp)
                left = Binary(tok.pos, tok.text, left, right)
            # Comparisons do not chain: `a < b < c` is almost always a mistake.
            nxt = self.peek()
            if bp == 4 and nxt.text in _INFIX and _INFIX[nxt.text] == 4 and nxt.kind != "string":
                raise self.fail(
                    f"comparisons do not chain; combine them with 'and' before {nxt.text!r}", nxt
                )

    def string_list(self) -> tuple[str, ...]:
        self.expect("(")
        values: list[str] = []
        while True:
            tok = self.next()
            if tok.kind != "string":
                raise self.fail(
                    '\'in\' takes a list of strings, e.g. ("Faulted", "Unavailable")', tok
                )
            values.append(_unquote(tok.text))
            sep = self.next()
            if sep.text == ")" and sep.kind == "op":
                return tuple(values)
            if sep.text != "," or sep.kind != "op":
                raise self.fail("expected ',' or ')'", sep)

    def prefix(self) -> Node:
        tok = self.next()
        if tok.kind == "number":
            return Num(tok.pos, float(tok.text))
        if tok.kind == "duration":
            try:
                return Num(tok.pos, parse_duration(tok.text))
            except ValueError as exc:
                raise self.fail(str(exc), tok) from None
        if tok.kind == "string":
            return Str(tok.pos, _unquote(tok.text))
        if tok.kind == "keyword":
            if tok.text in ("true", "false"):
                return BoolLit(tok.pos, tok.text == "true")
            if tok.text == "not":
                return Unary(tok.pos, "not", self.expr(_NOT_BP))
        if tok.kind == "op":
            if tok.text == "-":
                return Unary(tok.pos, "-", self.expr(_NEG_BP))
            if tok.text == "(":
                inner = self.expr(0)
                self.expect(")")
                return inner
        if tok.kind == "ident":
            if self.peek().text == "(" and self.peek().kind == "op":
                self.next()
                args: list[Node] = []
                if self.peek().text != ")":
                    args.append(self.expr(0))
                    while self.peek().text == "," and self.peek().kind == "op":
                        self.next()
                        args.append(self.expr(0))
                self.expect(")")
                return Call(tok.pos, tok.text, tuple(args))
            return Name(tok.pos, tok.text)
        what = "end of expression" if tok.kind == "end" else repr(tok.text)
        raise self.fail(f"unexpected {what}; expected a value, signal or function", tok)


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, In):
        return (node.operand,)
    if isinstance(node, Call):
        return node.args
    return ()


def _check_depth(root: Node, text: str) -> None:
    """Refuse a tree deeper than MAX_NESTING (iteratively: it may be very deep).

    The parser's own bound covers parentheses and prefix operators; a long
    chain such as ``a + a + ... + a`` is parsed in a loop but still builds a
    tree as deep as it is long.
    """
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            raise ExprError(f"nested more than {MAX_NESTING} levels deep", node.pos, text)
        stack.extend((child, depth + 1) for child in _children(node))


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def parse(text: str) -> Node:
    """Parse ``text`` into an AST; raises :class:`ExprError` pointing at the column."""
    return _Parser(text).parse()


# ---------------------------------------------------------------- history


@dataclass
class History:
    """Per-connector ring buffers of the signals window functions read.

    Sampled once per group evaluation, so its capacity follows from the
    longest window and the group interval. Rows are (time, connectors).
    """

    signals: dict[str, Kind]
    capacity: int
    times: NDArray[np.float64] = field(init=False)
    values: dict[str, NDArray[Any]] = field(init=False)
    head: int = 0  # next row to write
    count: int = 0
    since: float = float(
        "nan"
    )  # time of the first sample: windows longer than this are not covered

    def __post_init__(self) -> None:
        self.times = np.full(self.capacity, np.nan)
        self.values = {name: self._blank(kind, 0) for name, kind in self.signals.items()}

    def _blank(self, kind: Kind, n: int) -> NDArray[Any]:
        if kind == "string":
            return np.full((self.capacity, n), "", dtype=object)
        return np.full((self.capacity, n), np.nan)

    def push(self, now: float, frame: Frame, n: int) -> None:
        if self.count and now <= self.times[(self.head - 1) % self.capacity]:
            return  # the same instant twice (or time going back): keep one sample
        if self.count == 0:
            self.since = now
        for name, kind in self.signals.items():
            buf = self.values[name]
            if buf.shape[1] < n:  # connectors only ever get added (ConnectorIndex)
                grown = self._blank(kind, n)
                grown[:, : buf.shape[1]] = buf
                self.values[name] = buf = grown
            col = frame.get(name)
            if col is None:
                buf[self.head, :] = "" if kind == "string" else np.nan
            elif kind == "bool":
                buf[self.head, :n] = col[:n].astype(np.float64)
            else:
                buf[self.head, :n] = col[:n]
        self.times[self.head] = now
        self.head = (self.head + 1) % self.capacity
        self.count = min(self.count + 1, self.capacity)

    def window(
        self, name: str, now: float, seconds: float, n: int
    ) -> tuple[NDArray[np.float64], NDArray[Any]]:
        """Samples with ``now - seconds < t <= now``, oldest first: (times (k,), values (k, n))."""
        rows = np.nonzero((self.times > now - seconds) & (self.times <= now))[0]
        rows = rows[np.argsort(self.times[rows], kind="stable")]
        return self.times[rows], self.values[name][rows, :n]

    def window_anchored(
        self, name: str, now: float, seconds: float, n: int
    ) -> tuple[NDArray[np.float64], NDArray[Any]] | None:
        """Like :meth:`window` plus the last sample at or before ``now - seconds``.

        "Unchanged for 10m" must see a sample from 10 minutes ago; None when
        the history does not reach back that far.
        """
        older = self.times[self.times <= now - seconds]
        if older.size == 0:
            return None
        anchor = float(older.max())
        return self.window(name, now, now - anchor + 1e-9, n)

    def covers(self, now: float, seconds: float) -> bool:
        return bool(self.count) and now - self.since >= seconds

    def snapshot(self) -> dict[str, Any]:
        order = [(self.head - self.count + i) % self.capacity for i in range(self.count)]
        return {
            "since": self.since,
            "times": [float(self.times[i]) for i in order],
            "values": {name: buf[order].tolist() for name, buf in self.values.items()},
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        times = list(data.get("times", []))[-self.capacity :]
        k = len(times)
        if not k:
            return
        for name, kind in self.signals.items():
            rows = data.get("values", {}).get(name)
            if rows is None or len(rows) < k:
                continue
            arr = np.array(rows[-k:], dtype=object if kind == "string" else np.float64)
            if arr.ndim != 2:
                continue
            buf = self._blank(kind, arr.shape[1])
            buf[:k] = arr
            self.values[name] = buf
        self.times = np.full(self.capacity, np.nan)
        self.times[:k] = times
        self.head = k % self.capacity
        self.count = k
        self.since = float(data.get("since", times[0]))


# ---------------------------------------------------------------- compiler


@dataclass(frozen=True, slots=True)
class Context:
    frame: Frame
    n: int
    now: float
    history: History | None


Fn = Callable[[Context], NDArray[Any]]


@dataclass(frozen=True)
class _Compiled:
    kind: Kind
    fn: Fn
    value: Fn  # the number an alert shows as $value when this node is the condition


@dataclass(frozen=True)
class CompiledExpr:
    """A checked expression, ready to evaluate over a frame.

    ``windows`` maps each signal a window function reads to the longest window
    (seconds); the owner sizes a :class:`History` from it.
    """

    text: str
    ast: Node
    kind: Kind
    windows: dict[str, float]
    signals: frozenset[str]
    _cond: Fn
    _value: Fn

    def evaluate(
        self, now: float, frame: Frame, history: History | None = None
    ) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
        """(condition per connector, $value per connector)."""
        ctx = Context(frame, frame_length(frame), now, history)
        with np.errstate(all="ignore"):
            cond = self._cond(ctx)
            value = self._value(ctx)
        if cond.dtype != np.bool_:
            cond = np.asarray(cond, dtype=np.bool_)
        return cond, np.asarray(value, dtype=np.float64)


def compile_expr(
    text: str, catalogue: Mapping[str, Signal] | None = None, *, want: Kind | None = "bool"
) -> CompiledExpr:
    """Parse and type-check ``text`` against ``catalogue`` (default: SIGNALS)."""
    cat = SIGNALS if catalogue is None else catalogue
    ast = parse(text)
    c = _Compiler(text, cat)
    out = c.compile(ast)
    if want is not None and out.kind != want:
        raise ExprError(
            f"the expression is a {out.kind}, an alert condition must be true/false "
            "(compare it, e.g. `x > 0`)",
            ast.pos,
            text,
        )
    return CompiledExpr(text, ast, out.kind, c.windows, frozenset(c.signals), out.fn, out.value)


def _nan(ctx: Context) -> NDArray[np.float64]:
    return np.full(ctx.n, np.nan)


def _missing(kind: Kind, v: NDArray[Any]) -> NDArray[np.bool_]:
    if kind == "string":
        return np.asarray(v == "", dtype=np.bool_)
    return np.asarray(np.isnan(v), dtype=np.bool_)


class _Compiler:
    def __init__(self, text: str, catalogue: Mapping[str, Signal]) -> None:
        self.text = text
        self.catalogue = catalogue
        self.windows: dict[str, float] = {}
        self.signals: set[str] = set()

    def fail(self, message: str, node: Node) -> ExprError:
        return ExprError(message, node.pos, self.text)

    def compile(self, node: Node) -> _Compiled:
        method = getattr(self, f"_c_{type(node).__name__.lower()}")
        out: _Compiled = method(node)
        return out

    def _c_num(self, node: Num) -> _Compiled:
        v = node.value

        def fn(ctx: Context) -> NDArray[Any]:
            return np.full(ctx.n, v)

        return _Compiled("number", fn, fn)

    def _c_str(self, node: Str) -> _Compiled:
        v = node.value

        one = np.array(v, dtype=object)

        def fn(ctx: Context) -> NDArray[Any]:
            # A read-only view of one string, not n references to fill
            # (2 ms per literal per evaluation at 100k connectors).
            return np.broadcast_to(one, (ctx.n,))

        return _Compiled("string", fn, _nan)

    def _c_boollit(self, node: BoolLit) -> _Compiled:
        v = node.value

        def fn(ctx: Context) -> NDArray[Any]:
            return np.full(ctx.n, v, dtype=np.bool_)

        return _Compiled("bool", fn, lambda ctx: fn(ctx).astype(np.float64))

    def _signal(self, node: Name) -> Signal:
        sig = self.catalogue.get(node.name)
        if sig is None:
            close = difflib.get_close_matches(node.name, list(self.catalogue), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            if node.name in FUNCTIONS:
                hint = f"; {node.name} is a function: {node.name}(...)"
            raise self.fail(f"unknown signal {node.name!r}{hint}", node)
        self.signals.add(node.name)
        return sig

    def _c_name(self, node: Name) -> _Compiled:
        sig = self._signal(node)
        name, kind = sig.name, sig.kind

        def fn(ctx: Context) -> NDArray[Any]:
            col = ctx.frame.get(name)
            if col is None:  # the pipeline does not provide it (yet): unknown, not normal
                if kind == "string":
                    return np.full(ctx.n, "", dtype=object)
                return np.full(ctx.n, np.nan) if kind == "number" else np.zeros(ctx.n, np.bool_)
            return col[: ctx.n]

        if kind == "number":
            return _Compiled(kind, fn, fn)
        if kind == "bool":
            score = f"{name}_score"
            # A detector's condition shows its score as $value: more useful than "1".
            if score in self.catalogue and self.catalogue[score].kind == "number":
                score_name = Name(node.pos, score)
                return _Compiled(kind, fn, self._c_name(score_name).fn)
            return _Compiled(kind, fn, lambda ctx: fn(ctx).astype(np.float64))
        return _Compiled(kind, fn, _nan)

    def _c_unary(self, node: Unary) -> _Compiled:
        inner = self.compile(node.operand)
        f = inner.fn
        if node.op == "not":
            if inner.kind != "bool":
                raise self.fail(f"'not' needs a condition, got a {inner.kind}", node)
            return _Compiled("bool", lambda ctx: ~f(ctx), _nan)
        if inner.kind != "number":
            raise self.fail(f"'-' needs a number, got a {inner.kind}", node)
        return _Compiled("number", lambda ctx: -f(ctx), lambda ctx: -f(ctx))

    def _c_in(self, node: In) -> _Compiled:
        inner = self.compile(node.operand)
        if inner.kind != "string":
            raise self.fail(f"'in' needs a string signal such as status, got a {inner.kind}", node)
        f, values = inner.fn, list(node.values)
        return _Compiled("bool", lambda ctx: np.isin(f(ctx), values), _nan)

    def _c_binary(self, node: Binary) -> _Compiled:
        left, right = self.compile(node.left), self.compile(node.right)
        lf, rf = left.fn, right.fn
        op = node.op
        if op in ("and", "or"):
            for side in (left, right):
                if side.kind != "bool":
                    raise self.fail(
                        f"'{op}' needs conditions on both sides, got a {side.kind}", node
                    )
            if op == "and":
                lv, rv = left.value, right.value

                def value(ctx: Context) -> NDArray[Any]:
                    a = lv(ctx)
                    return np.where(np.isnan(a), rv(ctx), a)

                return _Compiled("bool", lambda ctx: lf(ctx) & rf(ctx), value)
            return _Compiled(
                "bool",
                lambda ctx: lf(ctx) | rf(ctx),
                lambda ctx: np.where(lf(ctx), left.value(ctx), right.value(ctx)),
            )
        if op in _COMPARISONS:
            return self._comparison(node, left, right)
        if left.kind != "number" or right.kind != "number":
            bad = left if left.kind != "number" else right
            raise self.fail(f"'{op}' needs numbers, got a {bad.kind}", node)
        arith: dict[str, Callable[[Any, Any], Any]] = {
            "+": np.add,
            "-": np.subtract,
            "*": np.multiply,
            "/": np.divide,  # x/0 is inf or NaN, never an exception
            "%": np.fmod,
        }
        f = arith[op]

        def fn(ctx: Context) -> NDArray[Any]:
            return np.asarray(f(lf(ctx), rf(ctx)), dtype=np.float64)

        return _Compiled("number", fn, fn)

    def _comparison(self, node: Binary, left: _Compiled, right: _Compiled) -> _Compiled:
        op = node.op
        if left.kind != right.kind:
            raise self.fail(f"cannot compare a {left.kind} with a {right.kind}", node)
        if left.kind in ("string", "bool") and op not in ("==", "!="):
            raise self.fail(f"{left.kind}s compare only with == or !=", node)
        for side_node, side in ((node.left, left), (node.right, right)):
            if side.kind == "string" and isinstance(side_node, Str):
                self._check_vocabulary(node, side_node)
        lf, rf = left.fn, right.fn
        kind = left.kind
        cmp: dict[str, Callable[[Any, Any], Any]] = {
            "==": np.equal,
            "!=": np.not_equal,
            "<": np.less,
            "<=": np.less_equal,
            ">": np.greater,
            ">=": np.greater_equal,
        }
        f = cmp[op]

        def fn(ctx: Context) -> NDArray[Any]:
            a, b = lf(ctx), rf(ctx)
            out = np.asarray(f(a, b), dtype=np.bool_)
            if kind != "bool":
                out &= ~_missing(kind, a) & ~_missing(kind, b)
            return out

        # $value of `x > 80` is x: what Prometheus shows for a filtering comparison.
        value = left.value if not isinstance(node.left, Num) else right.value
        return _Compiled("bool", fn, value)

    def _check_vocabulary(self, node: Binary, lit: Str) -> None:
        # Comparing status to "Faulty" would silently never fire; catch the typo at load.
        other = node.left if node.right is lit else node.right
        if not isinstance(other, Name):
            return
        vocab = {"status": CONNECTOR_STATUSES, "error_code": ERROR_CODES}.get(other.name)
        if vocab and lit.value not in vocab:
            close = difflib.get_close_matches(lit.value, vocab, n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else f"; expected one of {', '.join(vocab)}"
            )
            raise self.fail(f"{lit.value!r} is not a known {other.name}{hint}", lit)

    def _c_call(self, node: Call) -> _Compiled:
        name = node.func
        if name not in FUNCTIONS:
            close = difflib.get_close_matches(name, sorted(FUNCTIONS), n=1)
            hint = f"; did you mean {close[0]}()?" if close else ""
            raise self.fail(f"unknown function {name!r}{hint}", node)
        if name == "abs":
            if len(node.args) != 1:
                raise self.fail("abs() takes one argument", node)
            inner = self.compile(node.args[0])
            if inner.kind != "number":
                raise self.fail(f"abs() needs a number, got a {inner.kind}", node)
            f = inner.fn
            return _Compiled("number", lambda ctx: np.abs(f(ctx)), lambda ctx: np.abs(f(ctx)))
        if name == "present":
            if len(node.args) != 1:
                raise self.fail("present() takes one argument", node)
            inner = self.compile(node.args[0])
            g, k = inner.fn, inner.kind
            if k == "bool":
                return _Compiled("bool", lambda ctx: np.ones(ctx.n, np.bool_), _nan)
            return _Compiled("bool", lambda ctx: ~_missing(k, g(ctx)), _nan)
        return self._window(node)

    def _window(self, node: Call) -> _Compiled:
        name = node.func
        if len(node.args) != 2:
            raise self.fail(
                f"{name}() takes a signal and a duration, e.g. {name}(power_w, 5m)", node
            )
        sig_node, dur_node = node.args
        if not isinstance(sig_node, Name):
            raise ExprError(
                f"{name}() reads the history of a signal; give a signal name",
                _start(sig_node),
                self.text,
            )
        if not isinstance(dur_node, Num) or not self._is_duration_token(dur_node):
            raise self.fail(
                f"{name}() needs a duration such as 5m as its second argument", dur_node
            )
        sig = self._signal(sig_node)
        seconds = dur_node.value
        if seconds <= 0:
            raise self.fail("the window must be longer than 0s", dur_node)
        if sig.kind == "string" and name not in ("changes", "absent_for", "stale_for"):
            raise self.fail(f"{name}() needs a number signal; {sig.name} is a string", sig_node)
        self.windows[sig.name] = max(self.windows.get(sig.name, 0.0), seconds)
        fn = _window_fn(name, sig.name, sig.kind, seconds)
        kind: Kind = "bool" if name in ("absent_for", "stale_for") else "number"
        if kind == "bool":
            return _Compiled(kind, fn, lambda ctx: fn(ctx).astype(np.float64))
        return _Compiled(kind, fn, fn)

    def _is_duration_token(self, node: Num) -> bool:
        return bool(re.match(r"\d+(?:ms|s|m|h|d|w)", self.text[node.pos :], re.ASCII))


def _start(node: Node) -> int:
    """Position of the leftmost character of ``node`` (a Binary's own pos is its operator)."""
    if isinstance(node, Binary):
        return _start(node.left)
    if isinstance(node, In):
        return _start(node.operand)
    return node.pos


def _window_fn(func: str, name: str, kind: Kind, seconds: float) -> Fn:
    def fn(ctx: Context) -> NDArray[Any]:
        h = ctx.history
        if h is None or h.count == 0:
            return (
                np.full(ctx.n, np.nan)
                if func not in ("absent_for", "stale_for")
                else np.zeros(ctx.n, np.bool_)
            )
        if func == "stale_for":
            got = h.window_anchored(name, ctx.now, seconds, ctx.n)
            if got is None:
                return np.zeros(ctx.n, np.bool_)
            return _reduce(func, kind, got[0], got[1], ctx.n, True)
        times, vals = h.window(name, ctx.now, seconds, ctx.n)
        return _reduce(func, kind, times, vals, ctx.n, h.covers(ctx.now, seconds))

    return fn


def _reduce(
    func: str, kind: Kind, times: NDArray[np.float64], vals: NDArray[Any], n: int, covered: bool
) -> NDArray[Any]:
    k = times.shape[0]
    if vals.shape[1] < n:  # connectors newer than the history: unknown
        pad = np.full((k, n - vals.shape[1]), "" if kind == "string" else np.nan, dtype=vals.dtype)
        vals = np.concatenate([vals, pad], axis=1)
    present = ~_missing(kind, vals) if k else np.zeros((0, n), np.bool_)
    cnt = present.sum(axis=0)
    if func == "absent_for":
        return np.asarray((cnt == 0) & covered, dtype=np.bool_)
    if func == "stale_for":
        if k == 0 or not covered:
            return np.zeros(n, np.bool_)
        same = np.all(vals == vals[-1], axis=0) & (cnt == k)
        return np.asarray(same, dtype=np.bool_)
    if func == "changes":
        if k < 2:
            return np.where(cnt > 0, 0.0, np.nan)
        both = present[1:] & present[:-1]
        diff = np.asarray(vals[1:] != vals[:-1], dtype=np.bool_) & both
        return np.where(cnt > 0, diff.sum(axis=0).astype(np.float64), np.nan)
    v = np.asarray(vals, dtype=np.float64)
    if func in ("avg_over", "min_over", "max_over"):
        if k == 0:
            return np.full(n, np.nan)
        if func == "avg_over":
            out = np.where(present, v, 0.0).sum(axis=0) / np.maximum(cnt, 1)
        elif func == "min_over":
            out = np.where(present, v, np.inf).min(axis=0)
        else:
            out = np.where(present, v, -np.inf).max(axis=0)
        return np.where(cnt > 0, out, np.nan)
    # delta and rate: last present sample minus first present sample in the window.
    if k < 2:
        return np.full(n, np.nan)
    cols = np.arange(n)
    first = np.argmax(present, axis=0)
    last = k - 1 - np.argmax(present[::-1], axis=0)
    d = v[last, cols] - v[first, cols]
    if func == "rate":
        d = d / (times[last] - times[first])  # per second, like Prometheus's rate()
    return np.where(cnt >= 2, d, np.nan)
