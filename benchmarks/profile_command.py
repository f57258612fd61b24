"""Where one command's time goes: cProfile of Repository.execute on the bank example.

100 accounts of 10 events, then 2,000 deposit commands round robin (so the accounts grow to
about 30 events), on a fresh SQLite file (or --store URL); prints commands per second and the
top functions by own time. ``--no-snapshots`` replays every event on every command.

    .venv/bin/python benchmarks/profile_command.py [--no-snapshots] [--store URL]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import cronica
from cronica import Repository
from cronica.examples.bank import BankAccount, bank_events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="store URL (default: a new SQLite file)")
    parser.add_argument("--no-snapshots", action="store_true", help="snapshot_every=None")
    parser.add_argument("--commands", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.store or f"sqlite:///{Path(folder) / 'profile.db'}"
        with cronica.connect(url) as store:
            repo = (
                Repository(store, BankAccount, bank_events, snapshot_every=None)
                if args.no_snapshots
                else Repository(store, BankAccount, bank_events)
            )
            ids = [f"acc-{n}" for n in range(100)]
            for account_id in ids:
                repo.create(account_id, lambda a: a.open("x"))
                for _ in range(9):
                    repo.execute(account_id, lambda a: a.deposit("10.00"))

            def run(count: int) -> None:
                for k in range(count):
                    repo.execute(ids[k % len(ids)], lambda a: a.deposit("10.00"))

            started = time.perf_counter()
            run(args.commands // 2)
            print(f"{args.commands // 2 / (time.perf_counter() - started):,.0f} commands/s")
            profile = cProfile.Profile()
            profile.runcall(run, args.commands)
            pstats.Stats(profile).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
