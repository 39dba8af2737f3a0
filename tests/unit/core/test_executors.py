"""Which executors make a local model dir a warning: any but LocalExecutor, as the task's
own executor or the default of `[core] executor`, and only for local paths."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.executors import (
    default_executor,
    executor_class_name,
    local_path_warning,
    runs_on_one_host,
)

PATHS = ["/data/models/ctr", "/data/models/ctr/export/best"]


@pytest.mark.parametrize(
    ("setting", "default"),
    [
        ("LocalExecutor", "LocalExecutor"),
        ("CeleryExecutor", "CeleryExecutor"),
        (" CeleryExecutor , LocalExecutor", "CeleryExecutor"),
        ("LocalExecutor,KubernetesExecutor", "LocalExecutor"),
        ("my_alias:my.module.MyExecutor", "my_alias:my.module.MyExecutor"),
        ("CeleryExecutor;team_a=LocalExecutor", "CeleryExecutor"),
        ("=LocalExecutor;team_a=CeleryExecutor", "LocalExecutor"),
    ],
)
def test_the_default_executor_is_the_first_global_one(setting: str, default: str) -> None:
    assert default_executor(setting) == default


@pytest.mark.parametrize("setting", ["", " ", ",LocalExecutor", "team_a=CeleryExecutor"])
def test_a_setting_without_a_default_executor_is_refused_naming_it(setting: str) -> None:
    with pytest.raises(ValueError, match="names no default executor") as error:
        default_executor(setting)
    assert repr(setting) in str(error.value)


@pytest.mark.parametrize(
    ("executor", "name"),
    [
        ("CeleryExecutor", "CeleryExecutor"),
        ("airflow.providers.celery.executors.celery_executor.CeleryExecutor", "CeleryExecutor"),
        ("local:airflow.executors.local_executor.LocalExecutor", "LocalExecutor"),
        ("my_alias", "my_alias"),
    ],
)
def test_the_class_name_is_read_from_every_form(executor: str, name: str) -> None:
    assert executor_class_name(executor) == name


@pytest.mark.parametrize(
    ("executor", "one_host"),
    [
        ("LocalExecutor", True),
        ("airflow.executors.local_executor.LocalExecutor", True),
        ("fast:airflow.executors.local_executor.LocalExecutor", True),
        ("CeleryExecutor", False),
        ("KubernetesExecutor", False),
        ("airflow.providers.edge3.executors.EdgeExecutor", False),
        ("my.module.MyExecutor", False),
    ],
)
def test_only_the_local_executor_runs_on_one_host(executor: str, one_host: bool) -> None:
    assert runs_on_one_host(executor) is one_host


def test_a_local_path_under_celery_warns_naming_the_paths_executor_and_remedy() -> None:
    warning = local_path_warning(
        executor_setting="CeleryExecutor", task_executor=None, local_paths=PATHS
    )
    assert warning is not None
    for part in (*PATHS, "'CeleryExecutor'", "fcntl", "shared", "gs://"):
        assert part in warning


def test_a_local_path_under_the_local_executor_is_fine() -> None:
    assert (
        local_path_warning(executor_setting="LocalExecutor", task_executor=None, local_paths=PATHS)
        is None
    )


def test_the_tasks_own_executor_decides_over_the_default() -> None:
    setting = "LocalExecutor,CeleryExecutor"
    default = local_path_warning(executor_setting=setting, task_executor=None, local_paths=PATHS)
    assert default is None
    assert local_path_warning(
        executor_setting=setting, task_executor="CeleryExecutor", local_paths=PATHS
    )
    assert (
        local_path_warning(
            executor_setting="CeleryExecutor", task_executor="LocalExecutor", local_paths=PATHS
        )
        is None
    )


def test_a_setting_naming_no_executor_warns_instead_of_failing_the_export() -> None:
    warning = local_path_warning(executor_setting=";team=x", task_executor=None, local_paths=PATHS)
    assert warning is not None
    for part in (*PATHS, "';team=x'", "names no default executor", "fcntl", "gs://"):
        assert part in warning


def test_a_path_named_twice_is_named_once() -> None:
    warning = local_path_warning(
        executor_setting="CeleryExecutor", task_executor=None, local_paths=[PATHS[0], PATHS[0]]
    )
    assert warning is not None and warning.count(PATHS[0]) == 1


executors = st.sampled_from(
    ["LocalExecutor", "CeleryExecutor", "KubernetesExecutor", "a.b.LocalExecutor", "x:a.B"]
)


@given(
    default=executors,
    others=st.lists(executors, max_size=3),
    task_executor=st.none() | executors,
    local_paths=st.lists(st.sampled_from(PATHS), max_size=2),
)
def test_warns_exactly_for_local_paths_under_an_executor_spanning_hosts(
    default: str, others: list[str], task_executor: str | None, local_paths: list[str]
) -> None:
    setting = ",".join([default, *others])
    warning = local_path_warning(
        executor_setting=setting, task_executor=task_executor, local_paths=local_paths
    )
    deciding = task_executor or default
    assert (warning is not None) == (bool(local_paths) and not runs_on_one_host(deciding))
    if warning is not None:
        assert all(path in warning for path in local_paths)
        assert repr(deciding) in warning
