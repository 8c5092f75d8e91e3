"""Benchmarks and the reliability harness (not part of the default test run).

Scripts: ``request_cost.py``, ``throughput.py``, ``soak.py``, ``sync_scale.py`` and the older
``local_server_throughput.py``; shared code in :mod:`benchmarks._harness`, the naive
pyairtable baseline in :mod:`benchmarks.naive_baseline`.  A package so the fast versions in
``tests/test_soak.py`` and ``tests/test_request_cost.py`` run the very same harness.
See ``docs/benchmarks.md``.
"""
