"""The GCS exporter lock: a lease on a create-only object, over real HTTP.

The gcp-storage-emulator enforces no preconditions at all, so these tests run through a
proxy that enforces `ifGenerationMatch` as real GCS does: `=0` on uploads (create-only, done
by RecordingProxy) and `=<generation>` on uploads and deletes (GenerationEnforcingProxy),
which is what makes taking over an expired lock safe.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from gcs_fixtures import GenerationEnforcingProxy, RecordingProxy, emulator_client
from storage_test_models import template, write_model_files

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.strategies import BestStrategy, Candidate, LatestStrategy
from airflow_tf_export.storage import StorageError
from airflow_tf_export.storage.base import EXPORTER_LOCK_NAME
from airflow_tf_export.storage.export_flow import export_with_strategy
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.gcs import GcsStorage

LOCK = f"m/export/e/{EXPORTER_LOCK_NAME}"


@pytest.fixture
def proxy(gcs_emulator: str) -> Iterator[GenerationEnforcingProxy]:
    with GenerationEnforcingProxy(gcs_emulator) as running:
        yield running


@pytest.fixture
def bucket(proxy: GenerationEnforcingProxy) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    emulator_client(proxy.url).create_bucket(name)
    return name


def _storage(proxy: RecordingProxy, **kwargs: float) -> GcsStorage:
    return GcsStorage(emulator_client(proxy.url), **kwargs)


def _lock_blob(proxy: RecordingProxy, bucket: str) -> Any:
    return emulator_client(proxy.url).bucket(bucket).get_blob(LOCK)


def _plant_lock(proxy: RecordingProxy, bucket: str, expires_at: float) -> int:
    """A lock left by a writer that died, expiring at `expires_at`; its generation."""
    blob = emulator_client(proxy.url).bucket(bucket).blob(LOCK)
    blob.metadata = {"owner": "dead-host:1:x", "expires_at": str(expires_at)}
    blob.upload_from_string(b"{}", if_generation_match=0)
    return int(blob.generation)


def test_the_proxy_enforces_generation_preconditions_the_emulator_ignores(
    proxy: GenerationEnforcingProxy, bucket: str
) -> None:
    from google.api_core.exceptions import PreconditionFailed

    generation = _plant_lock(proxy, bucket, time.time())
    blob = emulator_client(proxy.url).bucket(bucket).blob(LOCK)
    with pytest.raises(PreconditionFailed):
        blob.delete(if_generation_match=generation + 1)
    blob.delete(if_generation_match=generation)
    assert _lock_blob(proxy, bucket) is None


def test_the_lock_is_held_inside_and_released_after(
    proxy: GenerationEnforcingProxy, bucket: str
) -> None:
    storage = _storage(proxy)
    with storage.exporter_lock(f"gs://{bucket}/m/export/e"):
        held = _lock_blob(proxy, bucket)
        assert held is not None
        assert held.metadata["owner"].count(":") == 2
        assert float(held.metadata["expires_at"]) > time.time() + 50
        state = ExporterDir(storage, f"gs://{bucket}/m/export/e").scan()
        assert (state.committed, state.staging, state.invalid) == ([], [], [])
    assert _lock_blob(proxy, bucket) is None


def test_an_exception_inside_releases_the_lock(
    proxy: GenerationEnforcingProxy, bucket: str
) -> None:
    storage = _storage(proxy, lock_timeout_seconds=0)
    with pytest.raises(RuntimeError), storage.exporter_lock(f"gs://{bucket}/m/export/e"):
        raise RuntimeError("the export failed")
    assert _lock_blob(proxy, bucket) is None
    with storage.exporter_lock(f"gs://{bucket}/m/export/e"):
        pass


def test_a_live_lock_is_waited_for_and_renewed_past_its_lease(
    proxy: GenerationEnforcingProxy, bucket: str
) -> None:
    """The holder keeps the lock for about 3 leases (renewing it every half second); the
    waiter enters only after the holder left, never by taking the lock over. The lease
    leaves a second of slack for a renewal delayed on a loaded machine."""
    uri = f"gs://{bucket}/m/export/e"
    holder, waiter = _storage(proxy, lock_lease_seconds=1.5), _storage(proxy)
    inside = threading.Event()
    times: dict[str, float] = {}

    def hold() -> None:
        with holder.exporter_lock(uri):
            inside.set()
            time.sleep(4.0)
            times["holder_left"] = time.monotonic()

    thread = threading.Thread(target=hold)
    thread.start()
    assert inside.wait(10)
    with waiter.exporter_lock(uri):
        times["waiter_entered"] = time.monotonic()
    thread.join()
    assert times["waiter_entered"] >= times["holder_left"]


def test_waiting_times_out_naming_the_lock_and_the_wait(
    proxy: GenerationEnforcingProxy, bucket: str
) -> None:
    _plant_lock(proxy, bucket, time.time() + 600)
    storage = _storage(proxy, lock_timeout_seconds=0.5)
    started = time.monotonic()
    with (
        pytest.raises(
            StorageError, match=r"timed out after \d+\.\ds waiting for the exporter lock"
        ) as raised,
        storage.exporter_lock(f"gs://{bucket}/m/export/e"),
    ):
        pass
    assert time.monotonic() - started < 5
    assert f"gs://{bucket}/{LOCK}" in str(raised.value)
    assert "dead-host:1:x" in str(raised.value)


def test_an_expired_lock_is_taken_over(proxy: GenerationEnforcingProxy, bucket: str) -> None:
    stale = _plant_lock(proxy, bucket, time.time() - 1)
    storage = _storage(proxy, lock_timeout_seconds=0)
    with storage.exporter_lock(f"gs://{bucket}/m/export/e"):
        held = _lock_blob(proxy, bucket)
        assert int(held.generation) != stale
        assert held.metadata["owner"] != "dead-host:1:x"
    assert _lock_blob(proxy, bucket) is None


def test_of_two_writers_taking_over_one_expired_lock_only_one_wins(
    proxy: GenerationEnforcingProxy, bucket: str
) -> None:
    """Writer B saw the expired lock; before its delete arrives, writer A deletes it and
    takes the lock. B's delete carries the expired lock's generation, so it gets 412 and
    B waits (here: times out) instead of deleting A's live lock."""
    uri = f"gs://{bucket}/m/export/e"
    _plant_lock(proxy, bucket, time.time() - 1)
    a, b = _storage(proxy), _storage(proxy, lock_timeout_seconds=0.5)
    a_holds, a_may_leave = threading.Event(), threading.Event()

    def a_takes_over() -> None:
        with a.exporter_lock(uri):
            a_holds.set()
            a_may_leave.wait(30)

    a_thread = threading.Thread(target=a_takes_over)

    def a_first(method: str, name: str | None) -> None:
        if method == "DELETE" and not a_thread.is_alive() and not a_holds.is_set():
            a_thread.start()
            assert a_holds.wait(10)

    proxy.before_forward = a_first
    try:
        with pytest.raises(StorageError, match="timed out"), b.exporter_lock(uri):
            pass
        assert a_holds.is_set()
        refused = [r for r in proxy.requests if r.method == "DELETE" and r.status == 412]
        assert len(refused) == 1
        assert _lock_blob(proxy, bucket).metadata["owner"] != "dead-host:1:x"
    finally:
        proxy.before_forward = None
        a_may_leave.set()
        if a_thread.is_alive():
            a_thread.join()
    assert _lock_blob(proxy, bucket) is None


_HOLDER = """
import sys, time
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from airflow_tf_export.storage.gcs import GcsStorage
client = storage.Client(project="test-project", credentials=AnonymousCredentials(),
                        client_options={"api_endpoint": sys.argv[1]})
with GcsStorage(client, lock_lease_seconds=1.5).exporter_lock(sys.argv[2]):
    print("held", flush=True)
    time.sleep(600)
"""


def test_the_lock_of_a_killed_holder_is_taken_over_after_its_lease(
    proxy: GenerationEnforcingProxy, bucket: str
) -> None:
    uri = f"gs://{bucket}/m/export/e"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, proxy.url, uri], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    time.sleep(0.7)  # let it renew once
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    left = _lock_blob(proxy, bucket)
    assert left is not None
    remaining = float(left.metadata["expires_at"]) - time.time()
    started = time.monotonic()
    with _storage(proxy, lock_timeout_seconds=10).exporter_lock(uri):
        waited = time.monotonic() - started
    assert waited >= remaining - 0.2
    assert waited < remaining + 3


def _race(storage: GcsStorage, uri: str, strategy: Any, candidates: list[Candidate]) -> Any:
    """Export each candidate from its own thread, both writing before either publishes; the
    committed versions."""
    barrier = threading.Barrier(len(candidates))
    errors: list[Exception] = []

    def run(candidate: Candidate) -> None:
        def write(directory: Any) -> Any:
            written = write_model_files(directory, candidate.global_step, shards=2)
            barrier.wait(timeout=30)
            return written

        try:
            export_with_strategy(ExporterDir(storage, uri), strategy, candidate, write)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(c,)) for c in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return ExporterDir(storage, uri).committed()


def _latest_race(storage: GcsStorage, uri: str) -> list[str | None]:
    same = [Candidate("/m/ckpt-10", 10), Candidate("/m/ckpt-10", 10)]
    return [m.checkpoint_path for m in _race(storage, uri, LatestStrategy(name="latest"), same)]


def test_concurrent_latest_exports_of_one_checkpoint_publish_one_version(
    proxy: GenerationEnforcingProxy, bucket: str
) -> None:
    storage = _storage(proxy)
    for run in range(5):
        assert _latest_race(storage, f"gs://{bucket}/m{run}/export/latest") == ["/m/ckpt-10"]


def _best_race(storage: GcsStorage, uri: str) -> list[float]:
    losses = {1: 0.3, 2: 0.4}  # step 1 is better
    candidates = [
        Candidate(f"/m/ckpt-{step}", step, EvalResult(step, {"loss": loss}))
        for step, loss in losses.items()
    ]
    committed = _race(storage, uri, BestStrategy(name="best"), candidates)
    return [m.eval_result.metrics["loss"] for m in committed if m.eval_result is not None]


def test_concurrent_best_exports_never_publish_a_worse_model_as_newest(
    proxy: GenerationEnforcingProxy, bucket: str
) -> None:
    storage = _storage(proxy)
    for run in range(10):
        losses = _best_race(storage, f"gs://{bucket}/m{run}/export/best")
        assert losses in ([0.3], [0.4, 0.3]), losses
        assert all(a > b for a, b in itertools.pairwise(losses))


def test_a_holder_that_lost_its_lease_does_not_publish_or_delete(
    proxy: GenerationEnforcingProxy, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Renewals fail until the lease expires (a GCS outage for this holder only, which
    cannot be produced here for one client: the failure is injected into its renewals);
    a waiter takes the lock over, and the holder's publish and version deletes are refused,
    retryably."""
    uri = f"gs://{bucket}/m/export/e"
    holder, waiter = _storage(proxy, lock_lease_seconds=1.5), _storage(proxy)
    renew = holder._write_lock

    def failing_renewal(lock: Any, owner: str, generation_match: int) -> int | None:
        if generation_match != 0:
            raise StorageError(f"{lock}: GCS unreachable (transient, retry later)")
        return renew(lock, owner, generation_match)

    monkeypatch.setattr(holder, "_write_lock", failing_renewal)
    inside, taken_over = threading.Event(), threading.Event()
    outcome: list[BaseException | None] = []

    def hold() -> None:
        with holder.exporter_lock(uri), holder.staging_dir(uri) as staging:
            inside.set()
            write_model_files(staging, 10)
            assert taken_over.wait(30)
            for act in (
                lambda: holder.publish_version(staging, uri, template(10)),
                lambda: holder.delete_versions(uri, [1]),
            ):
                try:
                    act()
                    outcome.append(None)
                except StorageError as error:
                    outcome.append(error)

    thread = threading.Thread(target=hold)
    thread.start()
    assert inside.wait(10)
    with waiter.exporter_lock(uri):
        taken_over.set()
        thread.join(60)
    for error in outcome:
        assert error is not None and "lost the exporter lock" in str(error)
        assert not isinstance(error, ValueError)
    assert len(outcome) == 2
    assert ExporterDir(waiter, uri).committed() == []
