"""A real Airflow deployment for end-to-end tests: PostgreSQL plus the Airflow components.

`fresh_database` creates a throwaway PostgreSQL database on 127.0.0.1:5432 and drops it
afterwards. `AirflowStack` migrates it and runs the scheduler (LocalExecutor, or the
CeleryExecutor with a Redis broker), the dag-processor, the triggerer and the api-server as
subprocesses. The api-server is there because workers reach the metadata DB only through its
Execution API. With Celery, `start` also starts Celery workers as other hosts would run
them, each with its own working dir, temp dir, log folder and hostname
(tests/e2e/worker_hostname.py).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_USER = "postgres"
AIRFLOW_BIN = Path(sys.executable).parent / "airflow"
COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
REDIS_URL = "redis://127.0.0.1:6379/5"
HOSTNAME_VARIABLE = "AIRFLOW_E2E_HOSTNAME"


def postgres_unreachable_reason() -> str | None:
    """Why PostgreSQL cannot be used here, or None when it can."""
    try:
        import psycopg2
    except ImportError:
        return "psycopg2 is not installed (it comes with the `dev` extra)"
    try:
        connection = psycopg2.connect(
            host=POSTGRES_HOST,
            port=POSTGRES_PORT,
            user=POSTGRES_USER,
            dbname="postgres",
            connect_timeout=3,
        )
    except psycopg2.OperationalError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        return (
            f"no PostgreSQL reachable at {POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT} "
            f"with trust auth ({first_line})"
        )
    connection.close()
    return None


def celery_unavailable_reason() -> str | None:
    """Why the CeleryExecutor cannot run here (no provider, no Redis), or None when it can."""
    try:
        import redis
        from airflow.providers.celery.executors.celery_executor import CeleryExecutor  # noqa: F401
    except ImportError as error:
        return f"the Celery provider cannot be imported ({error}): install the `celery` extra"
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as error:
        return f"no Redis reachable at {REDIS_URL} ({error})"
    return None


@dataclass(frozen=True)
class CeleryBroker:
    """A Redis broker and a queue of this stack's own, so that stacks sharing one Redis
    database never run each other's tasks."""

    url: str = REDIS_URL
    queue: str = field(default_factory=lambda: f"e2e-{uuid.uuid4().hex[:12]}")

    def forget(self) -> None:
        """Delete this queue's keys (messages a killed worker left unacknowledged included)."""
        import redis

        client = redis.Redis.from_url(self.url)
        for key in client.scan_iter(match=f"*{self.queue}*"):
            client.delete(key)
        # kombu keeps the messages of every queue awaiting an ack in one hash and its index.
        for tag, message in client.hscan_iter("unacked"):
            if self.queue.encode() in message:
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """Create a new PostgreSQL database, yield its SQLAlchemy URL, drop it at the end."""
    import psycopg2

    name = f"atfe_e2e_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(
        host=POSTGRES_HOST, port=POSTGRES_PORT, user=POSTGRES_USER, dbname="postgres"
    )
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+psycopg2://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class AirflowStack:
    """An Airflow home on PostgreSQL and its running components."""

    home: Path
    dags_folder: Path
    database_url: str
    extra_env: Mapping[str, str] = field(default_factory=dict)
    celery: CeleryBroker | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.api_port = free_port()
        celery_env = {}
        if self.celery is not None:
            celery_env = {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": self.celery.url,
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.celery.queue,
            }
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": (
                f"http://127.0.0.1:{self.api_port}/execution/"
            ),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            **celery_env,
            **self.extra_env,
        }
        self.logs = self.home / "component-logs"

    def airflow(self, *args: str, timeout: float = 120) -> str:
        """Run one `airflow ...` CLI command against this home; its stdout, or a clear error."""
        result = subprocess.run(
            [str(AIRFLOW_BIN), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"`airflow {' '.join(args)}` exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def backfill(self, dag_id: str, first: str, last: str, *extra: str) -> str:
        """Unpause `dag_id` and create a backfill of its runs from `first` to `last`."""
        self.airflow("dags", "unpause", dag_id)
        return self.airflow(
            "backfill",
            "create",
            "--dag-id",
            dag_id,
            "--from-date",
            first,
            "--to-date",
            last,
            *extra,
        )

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Rows of one read-only SQL query on the metadata database (faster than the CLI)."""
        import psycopg2

        dsn = self.database_url.replace("postgresql+psycopg2", "postgresql")
        connection = psycopg2.connect(dsn)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def start(self, *, workers: Sequence[str] = ()) -> None:
        """Migrate the database, then start every component with its log in `logs/`, and a
        Celery worker per name in `workers` (see `worker_dir`); wait until all are ready."""
        if workers and self.celery is None:
            raise RuntimeError("workers need a stack with a CeleryBroker")
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self.airflow("db", "migrate", timeout=300)
        for component in COMPONENTS:
            args = [component]
            if component == "api-server":
                args += ["--port", str(self.api_port), "--host", "127.0.0.1", "--workers", "1"]
            if component == "triggerer":
                args += ["--skip-serve-logs"]  # no fixed log-server port shared with others
            self._spawn(component, args, self.env)
        for name in workers:
            self._spawn_worker(name)
        wait_until(self._api_listening, timeout=120, what="the api-server to listen")
        for name in workers:
            wait_until(
                lambda name=name: self._worker_ready(name),
                timeout=120,
                what=f"Celery worker {name} to be ready",
            )

    def worker_dir(self, name: str) -> Path:
        """The working dir of worker `name`, with its `tmp/` (TMPDIR) and `logs/`."""
        return self.home.parent / f"host-{name}"

    def _spawn_worker(self, name: str) -> None:
        """A Celery worker run as host `name` would run it: its own working dir, TMPDIR and
        log folder; the task instances it runs record `name` as their hostname. It runs one
        task at a time (a TensorFlow task takes a core of these 2-core machines)."""
        assert self.celery is not None
        workdir = self.worker_dir(name)
        (workdir / "tmp").mkdir(parents=True, exist_ok=True)
        here = str(Path(__file__).parent)
        env = {
            **self.env,
            "TMPDIR": str(workdir / "tmp"),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(workdir / "logs"),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "worker_hostname.worker_hostname",
            HOSTNAME_VARIABLE: name,
            "PYTHONPATH": os.pathsep.join(p for p in (here, self.env.get("PYTHONPATH")) if p),
        }
        args = ["celery", "worker", "--celery-hostname", f"{name}@%h"]
        args += ["--queues", self.celery.queue, "--concurrency", "1"]
        self._spawn(f"worker-{name}", [*args, "--skip-serve-logs"], env, cwd=workdir)

    def _worker_ready(self, name: str) -> bool:
        self.assert_components_alive()
        return f"{name}@" in (log := self.log_tail(f"worker-{name}", 100_000)) and " ready." in log

    def kill(self, component: str) -> None:
        """SIGKILL a component and every process it started, at once, as a host dying would
        end them, and stop watching it."""
        import psutil

        process = self.processes.pop(component)
        tree = psutil.Process(process.pid)
        for member in [tree, *tree.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        process.wait(timeout=30)

    def _spawn(
        self, component: str, args: list[str], env: Mapping[str, str], cwd: Path | None = None
    ) -> None:
        log = (self.logs / f"{component}.log").open("wb")
        self.processes[component] = subprocess.Popen(
            [str(AIRFLOW_BIN), *args],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _api_listening(self) -> bool:
        self.assert_components_alive()
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.api_port)) == 0

    def assert_components_alive(self) -> None:
        for component, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"airflow {component} exited with {process.returncode}:\n"
                    + self.log_tail(component)
                )

    def log_tail(self, component: str, chars: int = 4000) -> str:
        path = self.logs / f"{component}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        """Terminate every component (its whole process group), killing after a grace period."""
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll `condition` every half second; TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
