"""CSV that is safe to open in a spreadsheet (OWASP "CSV injection").

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
is read by Excel, LibreOffice and Google Sheets as a formula, so an id tag such
as ``=HYPERLINK(...)`` sent by a charger would run on a billing clerk's desk.
Such a cell gets a leading apostrophe, which spreadsheets show as text.
Plain numbers (``-12.5``, ``+3``) are left alone: they are data billing sums,
and no spreadsheet evaluates them as anything but numbers.

Every CSV the product writes goes through :func:`csv_text`.
"""

from __future__ import annotations

__all__ = ["csv_text", "safe_cell"]

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """``value`` unchanged unless it is text a spreadsheet would run as a formula."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    if _PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The header and rows as RFC 4180 CSV, every cell made safe.

    Lines end with CRLF: with a bare ``\\n`` terminator the csv module would
    leave a lone carriage return inside a cell unquoted, and the file would not
    read back as written.
    """
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow([safe_cell(h) for h in header])
    out.writerows([safe_cell(v) for v in row] for row in rows)
    return buf.getvalue()
