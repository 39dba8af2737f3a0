"""The Airflow hook that gives the Storage for a model URI.

It is where the opt-in confinement is enforced: when the option `[tf_export] allowed_roots`
is set, every Storage it gives checks each URI against those roots before reading or
writing (AirflowFailException names the path, the option and its value); every operator,
sensor and trigger gets its Storage here.

Local paths need nothing from Airflow. For `gs://` URIs the google-cloud-storage client is
built from an Airflow Google Cloud connection through the Google provider's `GCSHook`, and
only when the storage layer asks for one, so local work never looks a connection up and
never imports the Google provider.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

from airflow_tf_export.storage import Storage, storage_for
from airflow_tf_export.storage.confinement import (
    ALLOWED_ROOTS_KEY,
    ALLOWED_ROOTS_OPTION,
    ALLOWED_ROOTS_SECTION,
    AllowedRoots,
    confined_storage,
)


class StorageHook(BaseHook):
    """Storage for local or GCS URIs; GCS credentials come from `gcp_conn_id`.

    :param gcp_conn_id: Airflow connection (type ``google_cloud_platform``) used for
        ``gs://`` URIs. It is looked up only when a GCS client is first needed.
    """

    conn_name_attr = "gcp_conn_id"
    default_conn_name = "google_cloud_default"
    hook_name = "TensorFlow export storage"

    def __init__(self, *, gcp_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gcp_conn_id = gcp_conn_id

    def get_conn(self) -> Any:
        """A google-cloud-storage client from the connection (what `GCSHook.get_conn` gives)."""
        return self._gcs_client()

    def storage_for(self, uri: str) -> Storage:
        """The Storage for `uri`, confined to the allowed roots when they are set (`uri`
        itself is checked now); AirflowFailException names a bad URI, a URI outside the
        roots, or a bad connection id."""
        roots = allowed_roots()
        try:
            return confined_storage(
                uri, roots, lambda u: storage_for(u, gcs_client_factory=self._gcs_client)
            )
        except ValueError as error:
            raise AirflowFailException(str(error)) from None

    def _gcs_client(self) -> Any:
        try:
            from airflow.providers.google.cloud.hooks.gcs import GCSHook
        except ImportError:
            raise AirflowFailException(
                "gs:// URIs need the Google provider: install airflow-tf-export[gcs]"
            ) from None
        try:
            hook = GCSHook(gcp_conn_id=self.gcp_conn_id)
        except AirflowNotFoundException:
            raise AirflowFailException(
                f"Airflow connection {self.gcp_conn_id!r} is not defined: create a "
                "google_cloud_platform connection with that id (or set an AIRFLOW_CONN_ "
                "variable), or pass the id of an existing one as gcp_conn_id"
            ) from None
        import requests
        from google.auth.exceptions import TransportError

        try:
            return hook.get_conn()
        except (TransportError, requests.ConnectionError, requests.Timeout):
            raise  # e.g. fetching a key_secret_name: transient, the task may retry
        except Exception as error:
            # Anything else is what the connection holds (a key that does not load, a key
            # file that is missing): waiting cannot fix it.
            raise AirflowFailException(
                f"cannot build a GCS client from Airflow connection {self.gcp_conn_id!r} "
                "(google_cloud_platform): its credentials could not be loaded; fix the "
                "connection's service-account key (keyfile_dict, key_path or key_secret_name): "
                f"{type(error).__name__}: {error}"
            ) from error


def allowed_roots() -> AllowedRoots | None:
    """The roots of `[tf_export] allowed_roots` (read now, so a changed setting applies to
    the next task), or None when it is unset or blank: no confinement."""
    from airflow.sdk import conf

    value = conf.get(ALLOWED_ROOTS_SECTION, ALLOWED_ROOTS_KEY, fallback="")
    return AllowedRoots.parse(value, ALLOWED_ROOTS_OPTION, error=AirflowFailException)
