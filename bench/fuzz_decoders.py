"""Fuzz the whole decoding path with random and mutated payloads.

Payloads are real native and OCPP 1.6 frames from the simulator, mutated
(bytes flipped, inserted, deleted, truncated; JSON values swapped for other
types, NaN, huge numbers, deep nesting; number literals only a lenient parse
reads: NaN, Infinity, 400 digits, 1e400) or random bytes, some on mutated
topics (other scripts' digits, control characters, non-ASCII), interleaved
with known good messages. Checks: no exception escapes the pipeline, no
rejection is an internal_error (a decoder bug), every rejection carries a
reason, and every good message's sample is stored.

Usage: python -m bench.fuzz_decoders [--payloads 1000000] [--seed 1]
Prints one JSON document; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from typing import Any

import orjson

from chargewatch.collector.pipeline import Pipeline
from chargewatch.ingest.decode_ocpp import OcppDecoder
from chargewatch.model.batch import MeterBatch
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.simulator import DEFAULT_START, SimConfig, Simulation

WEIRD: list[Any] = [
    None, True, False, 0, -1, 1e308, -1e308, 2**70, "", "x" * 300, [], {}, [[[[[]]]]],
    "NaN", "1e999", {"ts": None}, [1, "2", None], "2026-13-45T99:99:99Z",
    float("nan"), float("inf"), -float("inf"), -0.0, 10**400, -(10**400), 2**64, 0.0,
]  # fmt: skip
# Number literals as raw text (json.dumps writes NaN/Infinity, never 1e400).
LITERALS = [
    b"NaN", b"Infinity", b"-Infinity", b"-0", b"1e400", b"-1e400", b"9" * 400, b"-" + b"9" * 400,
    b"18446744073709551616", b"1e-400",
]  # fmt: skip
# Topic levels that str.isdigit() or int() mistake for numbers, and worse.
TOPIC_LEVELS = [
    "\u00b2", "\u0663", "\uff11", "1\n", "\x00", "\t", "\u00e9", "\u200b", "0" * 4301, "65",
    "-1", "", "CP\n", "\u202e", "#", "+",
]  # fmt: skip


def mutate_json(doc: Any, rng: random.Random) -> Any:
    if isinstance(doc, dict) and doc:
        k = rng.choice(list(doc))
        doc = dict(doc)
        r = rng.random()
        if r < 0.4:
            doc[k] = rng.choice(WEIRD)
        elif r < 0.6:
            del doc[k]
        elif r < 0.8:
            doc[k] = mutate_json(doc[k], rng)
        else:
            doc[rng.choice(["ts", "zz", "power_w", "meterValue"])] = rng.choice(WEIRD)
        return doc
    if isinstance(doc, list) and doc:
        doc = list(doc)
        i = rng.randrange(len(doc))
        doc[i] = mutate_json(doc[i], rng) if rng.random() < 0.6 else rng.choice(WEIRD)
        return doc
    return rng.choice(WEIRD)


def mutate_topic(topic: str, rng: random.Random) -> str:
    levels = topic.split("/")
    i = rng.randrange(1, len(levels))
    levels[i] = rng.choice(TOPIC_LEVELS) if rng.random() < 0.7 else levels[i] + rng.choice("\n²٣")
    return "/".join(levels)


def mutate_bytes(b: bytes, rng: random.Random) -> bytes:
    a = bytearray(b)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if not a:
            break
        i = rng.randrange(len(a))
        if op < 0.3:
            a[i] = rng.randrange(256)
        elif op < 0.5:
            del a[i]
        elif op < 0.6:
            a.insert(i, rng.choice(b'{}[]",:0123456789eE-+.NnaI'))
        elif op < 0.7:
            a[i:i] = rng.choice(LITERALS)
        else:
            del a[i:]
    return bytes(a)


class Count:
    def __init__(self) -> None:
        self.rows = 0
        self.ts: set[tuple[int, float]] = set()

    def on_batch(self, batch: MeterBatch, events: object, now: float) -> None:
        self.rows += len(batch)
        self.ts.update(zip(batch.conn.tolist(), batch.ts.tolist(), strict=True))

    def tick(self, now: float) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--payloads", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    seeds: list[tuple[str, bytes]] = []
    for protocol in ("native", "ocpp1.6"):
        sim = Simulation(
            SimConfig(
                chargers=6,
                duration=3600,
                interval=10,
                protocol=protocol,
                batch=3 if protocol == "native" else 1,
                seed=args.seed,
            )
        )
        seeds += [(t, p) for _, t, p in sim.messages()]
    index = ConnectorIndex()
    count = Count()
    pipeline = Pipeline(index, ocpp=OcppDecoder(index), stages=[count])
    good_marker = "ev/FUZZ-GOOD/1/meter"
    good_expected = 0
    reasons: Counter[str] = Counter()
    errors = 0
    t0 = time.perf_counter()
    chunk: list[tuple[str, bytes, float]] = []
    now = DEFAULT_START + 3600.0  # the seeds' own time, so their timestamps are current
    n = 0
    while n < args.payloads:
        topic, payload = rng.choice(seeds)
        r = rng.random()
        if r < 0.45:
            try:
                doc = orjson.loads(payload)
                payload = json.dumps(mutate_json(doc, rng)).encode()
            except (orjson.JSONDecodeError, TypeError, ValueError):
                payload = mutate_bytes(payload, rng)
        elif r < 0.9:
            payload = mutate_bytes(payload, rng)
        else:
            payload = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
        if rng.random() < 0.1:
            topic = mutate_topic(topic, rng)
        chunk.append((topic, payload, now))
        n += 1
        if n % 50 == 0:  # a known good sample, which must survive its noisy neighbours
            chunk.append((good_marker, orjson.dumps({"ts": now, "power_w": 1.0}), now))
            good_expected += 1
            now += 1.0
        if len(chunk) >= 5000:
            try:
                pipeline.process(chunk, now)
            except Exception as exc:  # the property under test: this never happens
                errors += 1
                print(f"exception escaped: {type(exc).__name__}: {exc}", file=sys.stderr)
            for rej in pipeline.rejected:
                reasons[rej.reason or "<none>"] += 1
            chunk = []
    if chunk:
        pipeline.process(chunk, now)
        for rej in pipeline.rejected:
            reasons[rej.reason or "<none>"] += 1
    dt = time.perf_counter() - t0
    good_id = index.get("FUZZ-GOOD", 1)
    good_kept = sum(1 for c, _ in count.ts if c == good_id)
    report = {
        "payloads": n,
        "seconds": round(dt, 1),
        "payloads_per_s": round(n / dt),
        "exceptions_escaped": errors,
        "rejections": sum(reasons.values()),
        "rejections_without_reason": reasons.get("<none>", 0),
        "rejections_by_reason": dict(reasons.most_common()),
        "good_samples_expected": good_expected,
        "good_samples_kept": good_kept,
        "internal_errors": reasons.get("internal_error", 0),
        "pass": errors == 0
        and "<none>" not in reasons
        and "internal_error" not in reasons
        and good_kept == good_expected,
    }
    print(json.dumps(report, indent=2))
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
