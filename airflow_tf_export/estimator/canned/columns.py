"""Which `tf.feature_column` columns the canned estimators take, checked before any graph exists.

A column is recognised by its class name (the classes `tf.feature_column.*` return), so the
check needs no TensorFlow; the columns a column is built on (a bucketized column's numeric
column, a cross's keys, an embedding's categorical column) are checked too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airflow_tf_export.savedmodel.errors import DefinitionError

_CATEGORICAL = {
    "BucketizedColumn": "bucketized_column",
    "VocabularyListCategoricalColumn": "categorical_column_with_vocabulary_list",
    "VocabularyFileCategoricalColumn": "categorical_column_with_vocabulary_file",
    "IdentityCategoricalColumn": "categorical_column_with_identity",
    "HashedCategoricalColumn": "categorical_column_with_hash_bucket",
    "CrossedColumn": "crossed_column",
}
_DENSE = {
    "NumericColumn": "numeric_column",
    "BucketizedColumn": "bucketized_column",
    "IndicatorColumn": "indicator_column",
    "EmbeddingColumn": "embedding_column",
}
_NOT_SUPPORTED = {
    "SharedEmbeddingColumn": "shared_embeddings",
    "WeightedCategoricalColumn": "weighted_categorical_column",
    "SequenceCategoricalColumn": "sequence_categorical_column_with_*",
    "SequenceNumericColumn": "sequence_numeric_column",
}
SUPPORTED = (
    "numeric_column, bucketized_column, categorical_column_with_vocabulary_list, "
    "categorical_column_with_vocabulary_file, categorical_column_with_identity, "
    "categorical_column_with_hash_bucket, crossed_column, indicator_column, embedding_column"
)


def check_feature_columns(columns: Any, *, argument: str, dense_only: bool) -> tuple[Any, ...]:
    """The columns of a `feature_columns` argument, each one checked.

    `dense_only` is the DNN's rule: a categorical column must be wrapped in an
    indicator_column or an embedding_column. Raises DefinitionError naming `argument`.
    """
    one_column = hasattr(columns, "parse_example_spec")  # columns are namedtuples: iterable
    if one_column or isinstance(columns, str | dict) or not isinstance(columns, Iterable):
        raise DefinitionError(f"{argument} must be a list of feature columns, got {columns!r}")
    checked = tuple(columns)
    if not checked:
        raise DefinitionError(f"{argument} must name at least one feature column")
    names: set[str] = set()
    for column in checked:
        _check_column(column, argument)
        if dense_only and type(column).__name__ not in _DENSE:
            raise DefinitionError(
                f"{argument}: {_kind(column)} {column.name!r} is categorical; a DNN takes it "
                "wrapped in tf.feature_column.indicator_column or embedding_column"
            )
        if column.name in names:
            raise DefinitionError(f"{argument}: two feature columns are named {column.name!r}")
        names.add(column.name)
    return checked


def is_categorical(column: Any) -> bool:
    """Whether the linear model looks `column` up by id (a bucketized column is both)."""
    return type(column).__name__ in _CATEGORICAL


def _kind(column: Any) -> str:
    """The `tf.feature_column` function that makes columns like `column`."""
    name = type(column).__name__
    return _DENSE.get(name) or _CATEGORICAL.get(name) or _NOT_SUPPORTED.get(name) or name


def _check_column(column: Any, argument: str) -> None:
    name = type(column).__name__
    if name not in _DENSE and name not in _CATEGORICAL:
        raise DefinitionError(
            f"{argument}: {_kind(column)} ({column!r:.80}) is not supported by the canned "
            f"estimators here; supported feature columns: {SUPPORTED}"
        )
    if name == "EmbeddingColumn" and column.ckpt_to_load_from is not None:
        raise DefinitionError(
            f"{argument}: embedding_column {column.name!r} has ckpt_to_load_from="
            f"{column.ckpt_to_load_from!r}; the export restores every variable from the "
            "model's checkpoint, so build the column without ckpt_to_load_from"
        )
    for parent in column.parents:
        if not isinstance(parent, str):
            _check_column(parent, argument)
