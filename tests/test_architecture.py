"""The layout of docs/architecture.md, enforced on every module's imports.

The allowed directions are written once, in the document's import-rules table;
this test parses it, reads every module's imports with ``ast`` (imports inside
functions and under TYPE_CHECKING count too: they are dependencies all the
same) and fails on an import against the table, a cycle, an undeclared
package, I/O reached from a pure package, or a pure module reading the clock.
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "chargewatch"
DOC = ROOT / "docs" / "architecture.md"

# Libraries that do I/O, hold a process-wide registry, or run threads.
IO_MODULES = frozenset(
    {
        "amqtt",
        "asyncio",
        "concurrent",
        "grafana_client",
        "http",
        "httpx",
        "multiprocessing",
        "paho",
        "prometheus_client",
        "psycopg",
        "psycopg_pool",
        "requests",
        "selectors",
        "socket",
        "socketserver",
        "sqlite3",
        "ssl",
        "subprocess",
        "threading",
        "urllib",
        "websockets",
    }
)
# Calls that read the clock: pure code is handed ``now`` instead.
CLOCK_CALLS = frozenset(
    {
        ("time", "time"),
        ("time", "time_ns"),
        ("time", "monotonic"),
        ("time", "monotonic_ns"),
        ("time", "perf_counter"),
        ("time", "perf_counter_ns"),
        ("datetime", "now"),
        ("datetime", "utcnow"),
        ("datetime", "today"),
        ("date", "today"),
    }
)


@dataclass(frozen=True)
class Rules:
    kinds: dict[str, str]
    allowed: dict[str, frozenset[str]]
    exceptions: frozenset[tuple[str, str]]


def _table(text: str, marker: str) -> list[list[str]]:
    """The rows of the markdown table that follows ``<!-- marker ... -->``."""
    start = text.index(f"<!-- {marker}")
    rows = []
    for line in text[start:].splitlines()[1:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if set(cells[0]) <= {"-"} or cells[0] in ("package", "module"):
            continue
        rows.append(cells)
    return rows


@cache
def rules() -> Rules:
    text = DOC.read_text(encoding="utf-8")
    kinds: dict[str, str] = {}
    allowed: dict[str, frozenset[str]] = {}
    for cells in _table(text, "import-rules"):
        name = cells[0].strip("`")
        kinds[name] = cells[1]
        deps = cells[2]
        allowed[name] = (
            frozenset() if deps == "—" else frozenset(d.strip() for d in deps.split(","))
        )
    exceptions = frozenset(
        (cells[0].strip("`"), cells[1].strip("`")) for cells in _table(text, "import-exceptions")
    )
    return Rules(kinds, allowed, exceptions)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@cache
def modules() -> dict[str, ast.Module]:
    return {
        module_name(p): ast.parse(p.read_text(encoding="utf-8"), str(p))
        for p in sorted(PACKAGE.rglob("*.py"))
    }


def _is_package(name: str) -> bool:
    return (ROOT / Path(*name.split(".")) / "__init__.py").is_file()


def imports(name: str) -> list[str]:
    """Every module ``name`` imports, absolute (``from a import b`` gives a.b if b is a module)."""
    return _imports(name, modules()[name])


@cache
def _imports(name: str, tree: ast.Module) -> list[str]:
    return list(_walk_imports(name, tree))


def _walk_imports(name: str, tree: ast.Module) -> Iterator[str]:
    own = name if _is_package(name) else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = own.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            for alias in node.names:
                if f"{target}.{alias.name}" in modules():
                    yield f"{target}.{alias.name}"


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def internal(module: str) -> bool:
    return module == "chargewatch" or module.startswith("chargewatch.")


def test_the_table_declares_every_package_and_nothing_else() -> None:
    on_disk = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert on_disk == set(rules().kinds), "docs/architecture.md's table and chargewatch/ differ"
    loose = {p.name for p in PACKAGE.glob("*.py")} - {"__init__.py", "__main__.py"}
    assert not loose, f"modules outside any package: {sorted(loose)}"
    for pkg, deps in rules().allowed.items():
        assert deps <= set(rules().kinds), f"{pkg} may import unknown packages {deps}"


def test_the_allowed_directions_have_no_cycle() -> None:
    allowed = rules().allowed
    state: dict[str, int] = {}

    def visit(pkg: str, path: tuple[str, ...]) -> None:
        if state.get(pkg) == 1:
            pytest.fail("cycle in docs/architecture.md: " + " -> ".join((*path, pkg)))
        if state.get(pkg) == 2:
            return
        state[pkg] = 1
        for dep in sorted(allowed[pkg]):
            visit(dep, (*path, pkg))
        state[pkg] = 2

    for pkg in sorted(allowed):
        visit(pkg, ())


def violations() -> list[str]:
    r = rules()
    found = []
    for name in modules():
        src = package_of(name)
        if src not in r.allowed:  # the root package and __main__
            continue
        for target in imports(name):
            if not internal(target) or target == "chargewatch":
                continue
            dst = package_of(target)
            if dst in (src, "") or dst in r.allowed[src] or (name, target) in r.exceptions:
                continue
            found.append(f"{name} imports {target}: {src} may not import {dst}")
    return sorted(set(found))


def test_every_import_follows_the_allowed_direction() -> None:
    assert violations() == []


def reach(name: str) -> set[str]:
    """``name`` and every chargewatch module it imports, directly or not."""
    seen = {name}
    todo = [name]
    while todo:
        for target in imports(todo.pop()):
            if internal(target) and target in modules() and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def pure_modules() -> list[str]:
    kinds = rules().kinds
    return [m for m in modules() if kinds.get(package_of(m)) in ("pure", "floor")]


def test_pure_packages_reach_no_io() -> None:
    problems = []
    for name in pure_modules():
        if rules().kinds[package_of(name)] != "pure":
            continue
        for mod in sorted(reach(name)):
            for target in imports(mod):
                top = target.split(".")[0]
                if top in IO_MODULES and (mod, target) not in rules().exceptions:
                    via = "" if mod == name else f" (through {mod})"
                    problems.append(f"{name} reaches {target}{via}")
    assert problems == [], "\n".join(problems)


def clock_reads(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            owner_name = owner.id if isinstance(owner, ast.Name) else ""
            if isinstance(owner, ast.Attribute):
                owner_name = owner.attr
            if (owner_name, node.func.attr) in CLOCK_CALLS:
                yield node.lineno, f"{owner_name}.{node.func.attr}()"


def test_pure_packages_never_read_the_clock() -> None:
    problems = [
        f"{name}:{line}: {call}"
        for name in pure_modules()
        for line, call in clock_reads(modules()[name])
    ]
    assert problems == []


def test_the_floor_imports_nothing_else_of_chargewatch() -> None:
    floor = [p for p, kind in rules().kinds.items() if kind == "floor"]
    for pkg in floor:
        assert rules().allowed[pkg] == frozenset(), f"{pkg} is the floor: it may import nothing"


# The checker itself: a rule that cannot fail checks nothing.


def test_the_checker_sees_a_backward_import(monkeypatch: pytest.MonkeyPatch) -> None:
    tree = ast.parse("from chargewatch.collector.pipeline import Pipeline\n")
    fake = {**modules(), "chargewatch.sessions.fake": tree}
    monkeypatch.setattr(
        "tests.test_architecture.modules", lambda: fake
    )  # the module-level cache stays intact
    assert violations() == [
        "chargewatch.sessions.fake imports chargewatch.collector.pipeline: "
        "sessions may not import collector"
    ]


def test_the_checker_sees_io_and_clock_reads_in_pure_code(monkeypatch: pytest.MonkeyPatch) -> None:
    tree = ast.parse(
        "import time\nimport sqlite3\nfrom chargewatch.core import metrics\n"
        "def f() -> float:\n    return time.monotonic()\n"
    )
    fake = {**modules(), "chargewatch.detectors.fake": tree}
    monkeypatch.setattr("tests.test_architecture.modules", lambda: fake)
    assert list(clock_reads(tree)) == [(5, "time.monotonic()")]
    with pytest.raises(AssertionError) as caught:
        test_pure_packages_reach_no_io()
    assert "chargewatch.detectors.fake reaches sqlite3" in str(caught.value)
    assert "reaches prometheus_client (through chargewatch.core.metrics)" in str(caught.value)


def test_no_file_refers_to_documents_outside_the_repository() -> None:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    tracked = [
        ROOT / f
        for f in listed
        if Path(f).suffix in {".py", ".md", ".yaml", ".yml", ".json", ".toml", ".sh", ".conf", ""}
        and Path(f).name != Path(__file__).name
        and (ROOT / f).is_file()
    ]
    outside = re.compile(r"DESIGN\.md|STYLE\.md|\.\./shared/(?!data)")
    hits = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in tracked
        for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if outside.search(line)
    ]
    assert hits == []
