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
        "config": {
            "tf_export": {
                "description": "Options of the TensorFlow export provider.",
                "options": {
                    "allowed_roots": {
                        "description": "Opt-in confinement. Comma-separated local directories "
                        "(absolute) and gs:// prefixes under which every path a task of this "
                        "provider reads or writes must lie: model dirs, exporter dirs, "
                        "checkpoints, eval event files and assets_extra sources (local paths "
                        "compared after resolving symbolic links). A path outside them fails "
                        "the task before anything is read or written there. Empty (the "
                        "default): no confinement, paths are used as given.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/data/models, gs://my-bucket/models",
                        "default": "",
                    }
                },
            }
        },
    }
