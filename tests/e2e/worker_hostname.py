"""`[core] hostname_callable` of the e2e Celery workers: the host name each worker plays
(two workers on one machine record distinct hostnames in their task instances)."""

from __future__ import annotations

import os

from airflow_stack import HOSTNAME_VARIABLE


def worker_hostname() -> str:
    """The worker's host name, from the variable `AirflowStack.start_worker` sets."""
    return os.environ[HOSTNAME_VARIABLE]
