"""The write-model benchmark: command round trips and aggregate loads, cronica vs eventsourcing.

``benchmarks/bench_write_model.py`` is the entry point; this package holds its parts:

- :mod:`writebench.common`: how much each workload does (``FULL`` and ``QUICK``), the amounts;
- :mod:`writebench.impl_cronica`, :mod:`writebench.impl_raw`, :mod:`writebench.impl_es`: the
  bank account as a cronica ``Repository``, as hand-written SQL, and as an eventsourcing 9.5
  ``Application``;
- :mod:`writebench.workloads`: the timed sections (command round trips, aggregate loads);
- :mod:`writebench.report`: medians, ratios, targets, the tables and the JSON.

The sites (fresh SQLite files and PostgreSQL schemas), the machine and durability checks, and the
way eventsourcing is pointed at a site are the event store benchmark's (:mod:`storebench`).
"""
