"""The event store benchmark: three implementations, five workloads, two SQL backends.

``benchmarks/bench_store.py`` is the entry point; this package holds its parts:

- :mod:`storebench.subjects`: what every implementation offers the workloads, and the payload;
- :mod:`storebench.sites`: fresh SQLite files and PostgreSQL schemas, and their clean-up;
- :mod:`storebench.impl_cronica`, :mod:`storebench.impl_raw`, :mod:`storebench.impl_es`: the
  three implementations (cronica, a hand-written raw-SQL baseline, eventsourcing 9.5);
- :mod:`storebench.workloads`: the timed sections A to E;
- :mod:`storebench.report`: medians, ratios, targets, the table and the JSON.
"""
