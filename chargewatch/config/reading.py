"""One section of the config file, read through the shared problem-collecting Reader.

Every section reader (settings.py, connections.py, sections.py) gets a
:class:`Section`: the mapping, its key path and the folder that relative file
names are read from, so that each ``get`` names only the key.
"""

from __future__ import annotations

__all__ = ["Section", "positive"]

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chargewatch.core.yamlsrc import MISSING, Reader
from chargewatch.core.yamlsrc import Path as KeyPath


def positive(v: float) -> bool:
    return v > 0


@dataclass(frozen=True)
class Section:
    r: Reader
    m: dict[str, Any]
    path: KeyPath
    base: Path  # the config file's folder

    @classmethod
    def open(
        cls,
        r: Reader,
        value: Any,
        path: KeyPath,
        base: Path,
        *,
        allowed: Iterable[str] | None = None,
        required: Iterable[str] = (),
    ) -> Section:
        """``value`` checked to be a mapping with only ``allowed`` keys ({} when absent)."""
        return cls(r, r.mapping(value, path, allowed=allowed, required=required), path, base)

    def child(self, key: str, *, allowed: Iterable[str]) -> Section:
        """The mapping under ``key``, as a section of its own."""
        return Section.open(self.r, self.m.get(key), (*self.path, key), self.base, allowed=allowed)

    def get(
        self,
        key: str,
        kind: type | tuple[type, ...],
        default: Any = MISSING,
        *,
        check: Callable[[Any], bool] | None = None,
        expected: str = "",
        secret: bool = False,
    ) -> Any:
        return self.r.get(
            self.m, self.path, key, kind, default, check=check, expected=expected, secret=secret
        )

    def file(self, key: str) -> Path | None:
        """A file name, relative to the config file's folder; None when not given."""
        v = self.get(key, str, "")
        if not v:
            return None
        out = Path(v)
        return out if out.is_absolute() else self.base / out

    def secret(self, key: str) -> str:
        """``key``, or the contents of the file ``KEY_file`` names (which wins)."""
        value: str = self.get(key, str, "", secret=True)
        file_key = f"{key}_file"
        file_value = self.get(file_key, str, "")
        if file_value:
            p = Path(file_value)
            if not p.is_absolute():
                p = self.base / p
            try:
                value = p.read_text(encoding="utf-8").strip()
            except OSError as exc:
                self.r.fail((*self.path, file_key), f"cannot read secret file: {exc.strerror}")
        return value
