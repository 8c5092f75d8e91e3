"""Runnable examples of the library.  A package so benchmarks and tests can import the very
worker code a user would run (``from examples.lead_scoring_worker import run_job``)."""
