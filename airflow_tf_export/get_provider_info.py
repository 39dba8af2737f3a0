"""Provider metadata for Airflow's `apache_airflow_provider` entry point.

The module lists are read from the package folders (without importing them), so a new
operator, sensor, trigger or hook module is listed as soon as it exists.
"""

from __future__ import annotations

import pkgutil
from pathlib import Path
from typing import Any

from airflow_tf_export import __version__

_PACKAGE = "airflow_tf_export"
_INTEGRATION = "TensorFlow model export"


def _modules(kind: str) -> list[str]:
    """Public modules of one provider sub-package, e.g. `airflow_tf_export.operators.export`."""
    folder = Path(__file__).parent / kind
    return sorted(
        f"{_PACKAGE}.{kind}.{info.name}"
        for info in pkgutil.iter_modules([str(folder)])
        if not info.name.startswith("_")
    )


def get_provider_info() -> dict[str, Any]:
    """What Airflow shows in `airflow providers list` and uses to discover hooks and triggers."""
    return {
        "package-name": "airflow-tf-export",
        "name": "TensorFlow Export",
        "description": "Final / latest / best TensorFlow SavedModel export, an eval-metrics "
        "sensor, retention and DAG templates for retraining and backfills.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://www.tensorflow.org/guide/saved_model",
                "tags": ["software"],
            }
        ],
        "operators": [{"integration-name": _INTEGRATION, "python-modules": _modules("operators")}],
        "sensors": [{"integration-name": _INTEGRATION, "python-modules": _modules("sensors")}],
        "triggers": [{"integration-name": _INTEGRATION, "python-modules": _modules("triggers")}],
        "hooks": [{"integration-name": _INTEGRATION, "python-modules": _modules("hooks")}],
    }
