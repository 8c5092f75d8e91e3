"""What a worker calls: the tracker, its jobs and client runs, and how their writes leave.

``tracker`` starts and attaches jobs and opens client runs; ``client_run`` holds a run's totals;
``commit`` is the group commit that writes them; ``runs`` holds what jobs and client runs share
(notes, errors, the ``with`` protocol); ``shutdown`` drains at exit and on SIGTERM.
"""
