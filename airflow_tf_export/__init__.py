"""airflow-tf-export: TensorFlow model export strategies as an Apache Airflow 3 provider.

Importing this package (or any operator, sensor, trigger, hook or DAG module) never imports
TensorFlow: only `airflow_tf_export.savedmodel` does, and only inside its functions.
"""

__version__ = "0.1.0"
