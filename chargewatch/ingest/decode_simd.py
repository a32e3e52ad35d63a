"""Columnar meter messages parsed straight into numpy arrays.

The general decoder turns every JSON array into a Python list, checks the
type of each element and converts the lists to numpy: about 0.65 µs a sample,
more than everything else in decoding together. simdjson's parser reads a
numeric array into a buffer of doubles in C, so a plain columnar message costs
a parse and one buffer per column.

Only plain messages take this path: an object whose keys are all meter keys,
each an array of numbers (the phased ones optionally of equal-width inner
arrays) or null. Everything else — strings, booleans, nulls inside arrays,
unknown keys, ragged phases, duplicate keys, whitespace inside numbers,
malformed JSON — is left to the general decoder, which gives the same result
for plain messages and the documented rejections for the rest. A test decodes
every message both ways and compares.

simdjson flattens nested arrays into the buffer and does not say how they
nested, so the structure is checked separately: with the number characters
and whitespace deleted, a plain message of n samples reduces to a skeleton
fixed by its keys, n and the phase widths (``{"ts":[,,],"power_w":[,,]...}``),
compared in one ``bytes`` operation.
"""

from __future__ import annotations

__all__ = ["SimdColumns"]

from typing import TYPE_CHECKING

import numpy as np
import simdjson
from numpy.typing import NDArray

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer as Buffer

#: Characters a JSON number (or whitespace) can consist of; what a message
#: keeps without them is its bracket-and-comma skeleton plus key names.
_NUMBER_CHARS = b"0123456789.-+eE \t\n\r"

_PHASED_KEYS = frozenset(("current_a", "voltage_v"))
_Object, _Array = simdjson.Object, simdjson.Array


class SimdColumns:
    """Gathers plain columnar messages as buffers of doubles, per key.

    Not thread-safe: it owns one simdjson parser, which the decoder's thread uses.
    """

    def __init__(self, keys: tuple[str, ...], max_samples: int) -> None:
        self.keys = keys
        self._known = frozenset(keys)
        self.max_samples = max_samples
        self._parser = simdjson.Parser()
        self._skeletons: dict[tuple[tuple[str, ...], int, tuple[int, ...]], bytes] = {}
        self._plain_keys: dict[tuple[str, ...], bool] = {}  # key sets seen: all meter keys, once
        self._key_bytes = {k: f'"{k}":'.encode().translate(None, _NUMBER_CHARS) for k in keys}
        self.reset()

    def reset(self) -> None:
        # Per key, per message: (message index, phase width, buffer); width 0 = flat.
        self.parts: dict[str, list[tuple[int, int, Buffer]]] = {k: [] for k in self.keys}
        self.conns: list[int] = []
        self.recvs: list[float] = []
        self.sizes: list[int] = []
        self.topics: list[str] = []
        self.payloads: list[bytes] = []
        self.total = 0

    def __len__(self) -> int:
        return len(self.sizes)

    def add(self, conn: int, topic: str, payload: bytes, recv: float) -> bool:
        """Take a message if it is plain; False leaves it to the general decoder."""
        columns = self._read(payload)
        if columns is None:
            return False
        n, cols = columns
        m = len(self.sizes)
        for key, width, buf in cols:
            self.parts[key].append((m, width, buf))
        self.conns.append(conn)
        self.recvs.append(recv)
        self.sizes.append(n)
        self.topics.append(topic)
        self.payloads.append(payload)
        self.total += n
        return True

    def _read(self, payload: bytes) -> tuple[int, list[tuple[str, int, Buffer]]] | None:
        # Every simdjson Object/Array must be gone before the parser's next
        # parse; they are all locals here, freed on return.
        try:
            doc = self._parser.parse(payload)
        except (ValueError, TypeError, RuntimeError):
            return None
        if type(doc) is not _Object:
            return None
        keys = tuple(doc.keys())
        plain = self._plain_keys.get(keys)
        if plain is None:
            plain = self._known.issuperset(keys) and len(set(keys)) == len(keys) and "ts" in keys
            if len(self._plain_keys) < 1024:
                self._plain_keys[keys] = plain
        if not plain:
            return None
        ts = doc["ts"]
        if type(ts) is not _Array:
            return None
        n = len(ts)
        if n == 0 or n > self.max_samples:
            return None
        cols: list[tuple[str, int, Buffer]] = []
        widths: list[int] = []
        for key in keys:
            value = doc[key]
            if value is None:
                widths.append(-1)
                continue
            if type(value) is not _Array or len(value) != n:
                return None
            try:
                buf = value.as_buffer(of_type="d")
            except (TypeError, ValueError):
                return None  # an element that is not a number
            count = memoryview(buf).nbytes >> 3
            if count == n:
                width = 0
            elif key in _PHASED_KEYS and count in (2 * n, 3 * n):
                width = count // n
            else:
                return None
            widths.append(width)
            cols.append((key, width, buf))
        skeleton = payload.translate(None, _NUMBER_CHARS)
        if skeleton != self._skeleton(keys, n, tuple(widths)):
            # One value per sample in a phased column may also be written as
            # one-element lists (single-phase chargers): [[16.0],[16.1]].
            phased = [i for i, k in enumerate(keys) if k in _PHASED_KEYS and widths[i] == 0]
            if not phased:
                return None
            for i in phased:
                widths[i] = 1
            if skeleton != self._skeleton(keys, n, tuple(widths)):
                return None
            cols = [(k, 1 if k in _PHASED_KEYS and w == 0 else w, b) for k, w, b in cols]
        return n, cols

    def _skeleton(self, keys: tuple[str, ...], n: int, widths: tuple[int, ...]) -> bytes:
        cache_key = (keys, n, widths)
        hit = self._skeletons.get(cache_key)
        if hit is None:
            flat = b"[" + b"," * (n - 1) + b"]"
            parts = []
            for key, width in zip(keys, widths, strict=True):
                if width < 0:
                    body = b"null".translate(None, _NUMBER_CHARS)
                elif width == 0:
                    body = flat
                else:
                    inner = b"[" + b"," * (width - 1) + b"]"
                    body = b"[" + b",".join([inner] * n) + b"]"
                parts.append(self._key_bytes[key] + body)
            hit = b"{" + b",".join(parts) + b"}"
            if len(self._skeletons) > 4096:  # many distinct message sizes: start over
                self._skeletons.clear()
            self._skeletons[cache_key] = hit
        return hit

    def column(self, key: str) -> NDArray[np.float64] | None:
        """Key's values for every sample gathered, (total,) or (total, 3) for
        phased keys; NaN where a message did not carry the key. None: no message did."""
        parts = self.parts[key]
        if not parts:
            return None
        phased = key in _PHASED_KEYS
        if len(parts) == len(self.sizes) and all(w == parts[0][1] for _, w, _ in parts):
            width = parts[0][1]
            flat = np.frombuffer(b"".join(b for _, _, b in parts), np.float64)
            if not phased:
                return flat
            out = np.full((self.total, 3), np.nan)
            out[:, : max(width, 1)] = flat.reshape(self.total, max(width, 1))
            return out
        out = np.full((self.total, 3) if phased else self.total, np.nan)
        starts = np.cumsum([0, *self.sizes])
        for m, width, buf in parts:
            values = np.frombuffer(memoryview(buf), np.float64)
            rows = slice(int(starts[m]), int(starts[m + 1]))
            if phased:
                out[rows, : max(width, 1)] = values.reshape(-1, max(width, 1))
            else:
                out[rows] = values
        return out
