"""Whether a local model dir is safe under the executor that runs an export: the pure part.

The exporter lock on local disk is an fcntl lock: it excludes writers on one host, and on
several hosts only when they share a POSIX file system that honours fcntl locks. An executor
that may run tasks on several hosts (Celery, Kubernetes, Edge, any executor but
LocalExecutor) with a local path is therefore worth a warning; `gs://` needs none.
"""

from __future__ import annotations

from collections.abc import Sequence

SINGLE_HOST_EXECUTORS = frozenset({"LocalExecutor"})
"""Executors that run every task on the host of the scheduler that queued it."""


def default_executor(executor_setting: str) -> str:
    """The executor `[core] executor` names first (the default one), as written: a name, a
    module path or `alias:module path`. In a multi-team setting
    (`global;team=executors;...`) the global part is read. ValueError when none is named."""
    global_part = executor_setting.split(";", 1)[0].lstrip("=")
    first = global_part.split(",", 1)[0].strip()
    if not first or "=" in first:
        raise ValueError(
            f"[core] executor {executor_setting!r} names no default executor: expected e.g. "
            "'LocalExecutor', 'CeleryExecutor' or 'alias:my.module.MyExecutor'"
        )
    return first


def executor_class_name(executor: str) -> str:
    """The class name of an executor written as a name, a module path or
    `alias:module path` (`celery:airflow.providers...CeleryExecutor` -> `CeleryExecutor`).
    An alias alone (no module path) is returned as it is."""
    return executor.rsplit(":", 1)[-1].strip().rsplit(".", 1)[-1]


def runs_on_one_host(executor: str) -> bool:
    """Whether `executor` runs every task on the scheduler's own host."""
    return executor_class_name(executor) in SINGLE_HOST_EXECUTORS


def local_path_warning(
    *, executor_setting: str, task_executor: str | None, local_paths: Sequence[str]
) -> str | None:
    """The warning an export logs when it writes `local_paths` (its local model dir and
    exporter dir; empty when both are on `gs://`) under an executor that may run tasks on
    several hosts: the task's own `executor` when it has one, else the default of
    `[core] executor`. None when the combination is safe. A setting naming no default
    executor is a warning too (an export is never failed over its warning): the executor
    that runs the task is then unknown, and may span hosts."""
    if not local_paths:
        return None
    paths = ", ".join(dict.fromkeys(local_paths))
    try:
        executor = task_executor or default_executor(executor_setting)
    except ValueError as error:
        where = f"local path {paths} used, and {error}, so the executor may run tasks on"
    else:
        if runs_on_one_host(executor):
            return None
        where = f"local path {paths} used under the executor {executor!r}, which may run tasks on"
    return (
        f"{where} several hosts: the exporter lock on local disk is an fcntl lock, so this is "
        "safe only when the path is on a POSIX file system shared by every worker that "
        "honours fcntl locks; otherwise use a gs:// model dir (see the 'Scaling out' page of "
        "the docs)"
    )
