"""Benchmark crypto-shredding: what encrypting personal fields costs appends and reads.

    python benchmarks/bench_privacy.py [--backend sqlite|postgresql|all] [--events 5000]
                                       [--subjects 1000] [--runs 3] [--json PATH]

One writer appends ``--events`` events, one per append, over ``--subjects`` streams (a data
subject each); every event carries two personal fields (name, email) and one that is not:

- **plain**: the events appended as they are (the baseline);
- **encrypted**: each event's two personal fields encrypted with its subject's key first
  (``PersonalData.encrypt``: AES-256-GCM, a fresh nonce per field), the subjects' keys made
  beforehand (the steady state: a subject's key is made once, on their first event);
- **first events**: the same, each event for a subject who has no key yet (``--events``
  subjects), so every append also makes and stores a key (the cost of a new subject's first
  personal data).

Reads: the whole log, a page of 1000 at a time, as stored (**raw**) and decrypted
(**decrypted**, ``PersonalData.decrypt_all``, keys cached as a projector has them). The log
then holds the three variants' events of every run: two thirds of them encrypted.

Figures are medians of ``--runs`` runs (the order of the variants alternates from run to run);
each variant is also given as a ratio to its baseline (plain appends, raw reads).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console

import cronica
from cronica.privacy import PersonalData
from storebench import environment
from storebench.impl_cronica import store_url
from storebench.sites import SiteFactory

POSTGRES = os.environ.get("CRONICA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
FIELDS = {"CustomerRegistered": ("name", "email")}


def event(n: int) -> cronica.NewEvent:
    return cronica.NewEvent(
        "CustomerRegistered",
        {"name": f"Customer Number {n}", "email": f"customer{n}@example.com", "tier": "gold"},
    )


def append_rate(
    store: cronica.EventStore, personal: PersonalData | None, subjects: list[str], count: int
) -> float:
    started = time.perf_counter()
    for n in range(count):
        subject = subjects[n % len(subjects)]
        new = event(n) if personal is None else personal.encrypt(event(n), subject)
        store.append(subject, [new])
    return count / (time.perf_counter() - started)


def read_rate(store: cronica.EventStore, personal: PersonalData | None) -> float:
    started = time.perf_counter()
    after, read = 0, 0
    while page := store.read_all(after=after, limit=1000):
        if personal is not None:
            page = personal.decrypt_all(page)
        read += len(page)
        after = page[-1].position
    return read / (time.perf_counter() - started)


def bench(
    factory: SiteFactory, backend: str, count: int, subjects: int, runs: int, say: Any
) -> dict[str, Any]:
    rates: dict[str, list[float]] = {
        "plain": [], "encrypted": [], "first_events": [], "raw": [], "decrypted": [],
    }  # fmt: skip
    with factory.fresh(backend, "privacy") as site, cronica.connect(store_url(site)) as store:  # type: ignore[arg-type]
        personal = PersonalData(store.subject_keys(), FIELDS)
        for run in range(runs):
            tag = uuid.uuid4().hex[:8]
            keyed = [f"c-{tag}-{n}" for n in range(subjects)]
            for subject in keyed:  # made beforehand: the steady state
                personal.keys.active_key(subject)
            variants: list[tuple[str, PersonalData | None, list[str]]] = [
                ("plain", None, [f"p-{tag}-{n}" for n in range(subjects)]),
                ("encrypted", personal, keyed),
                ("first_events", personal, [f"f-{tag}-{n}" for n in range(count)]),
            ]
            if run % 2:
                variants.reverse()
            for name, cipher, streams in variants:
                rate = append_rate(store, cipher, streams, count)
                rates[name].append(rate)
                say(f"{backend} run {run + 1}: {name} {rate:,.0f} appends/s")
        for run in range(runs):  # the log: runs x 3 x count events, 2 in 3 encrypted
            for name in ["raw", "decrypted"] if run % 2 == 0 else ["decrypted", "raw"]:
                rate = read_rate(store, personal if name == "decrypted" else None)
                rates[name].append(rate)
                say(f"{backend} read run {run + 1}: {name} {rate:,.0f} events/s")
    median = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "runs": rates,
        "median": median,
        "ratios": {
            "encrypted_append": median["encrypted"] / median["plain"],
            "first_event_append": median["first_events"] / median["plain"],
            "decrypted_read": median["decrypted"] / median["raw"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="500 events, one run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.events, args.subjects, args.runs = 500, 100, 1
    console = Console(stderr=True)
    factory = SiteFactory(POSTGRES, None)
    info = environment.conditions(
        quick=args.quick, runs=args.runs,
        sizes={"events": args.events, "subjects": args.subjects},
        backend=args.backend, postgres=POSTGRES, tmp_dir=factory.tmp_dir,
    )  # fmt: skip
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    results: dict[str, Any] = {}
    try:
        for backend in backends:
            results[backend] = m = bench(
                factory, backend, args.events, args.subjects, args.runs, console.print
            )
            r = m["ratios"]
            console.print(
                f"{backend}: encrypted appends {r['encrypted_append']:.2f} of plain, first"
                f" events {r['first_event_append']:.2f}, decrypted reads"
                f" {r['decrypted_read']:.2f} of raw"
            )
    finally:
        factory.close()
    if args.json:
        args.json.write_text(json.dumps({"conditions": info, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
