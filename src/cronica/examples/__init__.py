"""The seed's example domains, to run and to read.

- :mod:`cronica.examples.bank`: bank accounts (seed 1.4.2): a balance that never goes negative.
- :mod:`cronica.examples.orders`: e-commerce orders (seed 1.8.2): a state machine.
- :mod:`cronica.examples.customers`: customer records (seed 1.7.3): an event type whose schema
  changed, read through an upcaster.

Each runs as a script on an in-memory store, or on the store named by ``--store``:
``python -m cronica.examples.bank --store sqlite:///bank.db``.
"""
