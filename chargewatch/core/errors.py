"""The exceptions chargewatch raises across package boundaries.

Every message says what happened and where; the attributes let callers count and
report without parsing the text.
"""

from __future__ import annotations

__all__ = ["ConfigError", "ConfigProblem", "DecodeError"]

from dataclasses import dataclass


class DecodeError(ValueError):
    """A message (or one sample in it) that cannot be used.

    ``reason`` is a short, stable snake_case code (it is a metric label and the
    key of the dead-letter file); ``detail`` is for humans.
    """

    def __init__(self, reason: str, detail: str = "", *, topic: str = "") -> None:
        self.reason = reason
        self.detail = detail
        self.topic = topic
        where = f"{topic}: " if topic else ""
        super().__init__(f"{where}{reason}" + (f" ({detail})" if detail else ""))


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a configuration, rule, fleet or tariff file."""

    file: str
    path: str  # dotted key path, e.g. "influx.batch_lines" or "sites[2].timezone"
    message: str  # what was expected, or what is wrong
    line: int = 0  # 1-based; 0 when unknown
    column: int = 0

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}:{self.column}"
        path = f" {self.path}:" if self.path else ""
        return f"{where}:{path} {self.message}"


class ConfigError(ValueError):
    """A configuration file is wrong. Carries every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        if not problems:
            raise ValueError("ConfigError needs at least one problem")
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
