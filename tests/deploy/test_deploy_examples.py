"""The shipped example configs list every key their loader accepts, and load.

deploy/bridge.yaml had fallen behind config/bridge_settings.py. Here the
vocabulary is what the loader itself asks for (every ``allowed=`` it passes to
``Reader.mapping`` while it reads the example), so a key added to a loader
without its line in the example fails this test.

An example lists a key either live or commented out, as ``# key: default`` at
the key's indentation (nested keys likewise: ``#   cert_file: ...``; a list
item as ``# - {...}``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from chargewatch.config.bridge_settings import load_bridge_config, parse_bridge_config
from chargewatch.config.settings import load_config, parse_config
from chargewatch.core.errors import ConfigError
from chargewatch.core.yamlsrc import Reader, Source, load_yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KeyPath = tuple[str, ...]

#: Sections an example points elsewhere for: per-detector parameters
#: (docs/detectors.md) and the bridge (deploy/bridge.yaml, tested here too).
ELSEWHERE: dict[str, set[KeyPath]] = {
    "chargewatch.yaml": {("detectors",), ("bridge",)},
    "bridge.yaml": set(),
}
LOADERS: dict[str, Callable[[Source], Any]] = {
    "chargewatch.yaml": lambda src: parse_config(src, env={}),
    "bridge.yaml": lambda src: parse_bridge_config(src, env={}),
}

_COMMENTED_KEY = re.compile(r"^(\s*)# (\s*(?:[a-z][a-z0-9_]*:(?:\s.*)?|- .*))$")


def uncommented(text: str) -> str:
    """The example with its commented-out keys put back."""
    return "\n".join(_COMMENTED_KEY.sub(r"\1\2", line) for line in text.splitlines())


def vocabulary(text: str, load: Callable[[Source], Any]) -> dict[KeyPath, set[str]]:
    """Every mapping the loader reads in ``text`` and the keys it allows there
    (list items as ``[]``); files it cannot find and the like do not matter."""
    seen: dict[KeyPath, set[str]] = {}
    original = Reader.mapping

    def record(self: Reader, value: Any, path: Any, **kw: Any) -> dict[str, Any]:
        if kw.get("allowed") is not None:
            key = tuple("[]" if isinstance(p, int) else str(p) for p in path)
            seen.setdefault(key, set()).update(kw["allowed"])
        return original(self, value, path, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(Reader, "mapping", record)
    try:
        load(load_yaml("example.yaml", text=text))
    except ConfigError:
        pass
    finally:
        mp.undo()
    return seen


def keys_at(doc: Any, path: KeyPath) -> set[str]:
    """The keys the document holds at ``path`` (list items pooled)."""
    nodes: Iterable[Any] = [doc]
    for part in path:
        nodes = list(_step(nodes, part))
    return {k for n in nodes if isinstance(n, dict) for k in n}


def _step(nodes: Iterable[Any], part: str) -> Iterator[Any]:
    for n in nodes:
        if part == "[]" and isinstance(n, list):
            yield from n
        elif isinstance(n, dict) and part in n:
            yield n[part]


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_the_example_lists_every_key_the_loader_accepts(name: str) -> None:
    text = uncommented((DEPLOY / name).read_text())
    doc = yaml.safe_load(text)
    vocab = vocabulary(text, LOADERS[name])
    assert () in vocab or ("bridge",) in vocab  # the recording saw the loader
    missing = {
        ".".join((*path, key))
        for path, allowed in vocab.items()
        if not any(path[: len(e)] == e for e in ELSEWHERE[name])
        for key in allowed - keys_at(doc, path)
        if (*path, key) not in ELSEWHERE[name]
    }
    assert not missing, f"deploy/{name} lacks {sorted(missing)}"


def test_uncommenting_keeps_prose_and_nests_keys() -> None:
    text = "a:\n  # Prose: not a key\n  # b: 1  # why\n  # c:\n  #   d: x\n  e:\n  # - 1\n"
    assert yaml.safe_load(uncommented(text)) == {"a": {"b": 1, "c": {"d": "x"}, "e": [1]}}


#: What the examples with every key uncommented may fail on: files that exist
#: only in the container, and keys that exclude each other (ledger.path, url).
_ONLY_WHERE_MOUNTED = re.compile(r"no such file|does not exist|is not one|not both", re.I)


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_every_listed_value_is_one_the_loader_takes(name: str) -> None:
    text = uncommented((DEPLOY / name).read_text())
    try:
        LOADERS[name](load_yaml(name, text=text))
    except ConfigError as exc:
        wrong = [str(p) for p in exc.problems if not _ONLY_WHERE_MOUNTED.search(p.message)]
        assert not wrong, "\n".join(wrong)


def _as_mounted(text: str, tmp_path: Path) -> str:
    """Container paths mapped onto the repository (what compose mounts there)."""
    for inside, outside in (
        ("/etc/chargewatch/fleet.yaml", DEPLOY / "fleet.yaml"),
        ("/etc/chargewatch/rules", ROOT / "rules"),
        ("/etc/chargewatch/tariffs", ROOT / "tariffs"),
        ("/run/secrets/", f"{DEPLOY / 'secrets'}/"),
        ("/var/lib/chargewatch", tmp_path / "data"),
    ):
        text = text.replace(inside, str(outside))
    return text


def test_the_bridge_example_loads(tmp_path: Path) -> None:
    f = tmp_path / "bridge.yaml"
    f.write_text(_as_mounted((DEPLOY / "bridge.yaml").read_text(), tmp_path))
    cfg = load_bridge_config(f, env={})
    assert cfg.mqtt.username == "ocpp-bridge" and cfg.mqtt.password
    assert cfg.http_listen == "0.0.0.0:9109"


def test_the_collector_example_loads(tmp_path: Path) -> None:
    f = tmp_path / "chargewatch.yaml"
    f.write_text(_as_mounted((DEPLOY / "chargewatch.yaml").read_text(), tmp_path))
    cfg = load_config(f, env={})
    assert cfg.mqtt.host == "mosquitto" and cfg.http.listen == "0.0.0.0:9108"
