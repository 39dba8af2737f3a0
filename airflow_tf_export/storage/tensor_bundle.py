"""TensorFlow's tensor bundle (a checkpoint, or a SavedModel's `variables/`) read without TF.

`<prefix>.index` is an SSTable (see `sstable`) mapping each tensor name to a `BundleEntry`:
dtype, shape, shard, offset, size and the masked CRC32C of the tensor's bytes; the empty key
holds the `BundleHeader` (number of shards, endianness). A tensor's bytes are
`[offset, offset + size)` of `<prefix>.data-<shard:05d>-of-<shards:05d>`, in row-major order.

Fixed-width numeric and bool tensors are decoded; strings, resources, variants, complex
numbers and partitioned (sliced) tensors are reported as unsupported. Everything read is
checked against its CRC32C. The global step of an Estimator export (its `global_step`
variable) is what the exporter dirs need, read with `saved_model_global_step`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from airflow_tf_export.storage.base import Entry, Storage, StorageError, StorageNotFoundError
from airflow_tf_export.storage.bundle_protos import (
    BIG_ENDIAN,
    LITTLE_ENDIAN,
    BundleEntry,
    BundleHeader,
)
from airflow_tf_export.storage.manifest import SAVED_MODEL_FILENAMES
from airflow_tf_export.storage.sstable import Table, masked_crc32c

GLOBAL_STEP = "global_step"
SAVED_MODEL_VARIABLES = "variables/variables"

_HEADER_KEY = b""
_BFLOAT16 = 14
# TensorFlow DataType -> (name, struct format, or None for bfloat16 which struct lacks).
_NUMERIC: dict[int, tuple[str, str | None]] = {
    1: ("float32", "f"),
    2: ("float64", "d"),
    3: ("int32", "i"),
    4: ("uint8", "B"),
    5: ("int16", "h"),
    6: ("int8", "b"),
    9: ("int64", "q"),
    10: ("bool", "?"),
    _BFLOAT16: ("bfloat16", None),
    17: ("uint16", "H"),
    19: ("float16", "e"),
    22: ("uint32", "I"),
    23: ("uint64", "Q"),
}
_UNSUPPORTED = {7: "string", 8: "complex64", 18: "complex128", 20: "resource", 21: "variant"}
_INTEGERS = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}


class TensorBundleError(StorageError):
    """A tensor bundle, or a tensor in it, cannot be read; the message names the file."""


@dataclass(frozen=True)
class Tensor:
    """One tensor's dtype name (e.g. "int64"), shape and values, flat in row-major order."""

    dtype: str
    shape: tuple[int, ...]
    values: tuple[float | int | bool, ...]


@dataclass(frozen=True)
class BundleEntryInfo:
    """Where one tensor is stored and what it is."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int
    sliced: bool

    @property
    def dtype_name(self) -> str:
        """E.g. "int64", or "DataType 99" for one TensorFlow added later."""
        if self.dtype in _NUMERIC:
            return _NUMERIC[self.dtype][0]
        return _UNSUPPORTED.get(self.dtype, f"DataType {self.dtype}")


class TensorBundle:
    """The tensors of the bundle at `prefix` (e.g. `.../variables/variables`).

    `index_size` is the `.index` file's size when a listing already gave it (saves a request).
    """

    def __init__(self, storage: Storage, prefix: str, *, index_size: int | None = None) -> None:
        self.storage = storage
        self.prefix = prefix
        self.index_uri = f"{prefix}.index"
        self._table = Table(storage, self.index_uri, index_size)
        raw = self._table.get(_HEADER_KEY)
        if raw is None:
            raise TensorBundleError(f"{self.index_uri} has no bundle header: not a tensor bundle")
        header = self._parse(BundleHeader, raw, "the bundle header")
        if header.num_shards <= 0 or header.endianness not in (LITTLE_ENDIAN, BIG_ENDIAN):
            raise TensorBundleError(
                f"{self.index_uri}: bundle header says {header.num_shards} shards, endianness "
                f"{header.endianness}; expected >= 1 shard, endianness 0 (little) or 1 (big)"
            )
        self.num_shards: int = header.num_shards
        self._byte_order = "<" if header.endianness == LITTLE_ENDIAN else ">"

    def entry(self, name: str) -> BundleEntryInfo:
        """Where tensor `name` is stored; TensorBundleError when the bundle has no such tensor."""
        raw = self._table.get(name.encode()) if name else None
        if raw is None:
            raise TensorBundleError(f"{self.index_uri} has no tensor {name!r}")
        proto = self._parse(BundleEntry, raw, f"the entry of {name!r}")
        if proto.shape.unknown_rank or any(d.size < 0 for d in proto.shape.dim):
            raise TensorBundleError(f"{self.index_uri}: tensor {name!r} has no fully known shape")
        return BundleEntryInfo(
            name=name,
            dtype=proto.dtype,
            shape=tuple(d.size for d in proto.shape.dim),
            shard=proto.shard_id,
            offset=proto.offset,
            size=proto.size,
            crc32c=proto.crc32c,
            sliced=len(proto.slices) > 0,
        )

    def data_uri(self, shard: int) -> str:
        """The data file of `shard`, e.g. `<prefix>.data-00000-of-00001`."""
        return f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}"

    def read(self, name: str) -> Tensor:
        """Tensor `name`, decoded after its CRC32C is checked (one ranged read)."""
        entry = self.entry(name)
        where = f"{self.index_uri}: tensor {name!r}"
        if entry.sliced:
            raise TensorBundleError(f"{where} is partitioned into slices, which are not read")
        if entry.dtype not in _NUMERIC:
            raise TensorBundleError(f"{where} has dtype {entry.dtype_name}, which is not read")
        if not 0 <= entry.shard < self.num_shards:
            raise TensorBundleError(
                f"{where} names shard {entry.shard}, but the bundle has {self.num_shards}"
            )
        dtype, fmt = _NUMERIC[entry.dtype]
        count = math.prod(entry.shape)
        width = 2 if fmt is None else struct.calcsize(fmt)
        if entry.size != count * width:
            raise TensorBundleError(
                f"{where} is {entry.size} bytes, but {count} {dtype} values take {count * width}"
            )
        data = self._data(entry, where)
        return Tensor(dtype, entry.shape, self._decode(data, fmt, count))

    def _data(self, entry: BundleEntryInfo, where: str) -> bytes:
        uri = self.data_uri(entry.shard)
        try:
            data = self.storage.read_bytes(uri, entry.offset, entry.offset + entry.size)
        except StorageNotFoundError:
            raise TensorBundleError(f"{where}: data file {uri} does not exist") from None
        if len(data) != entry.size:
            raise TensorBundleError(
                f"{where}: {uri} holds {len(data)} of its {entry.size} bytes at offset "
                f"{entry.offset} (truncated)"
            )
        if masked_crc32c(data) != entry.crc32c:
            raise TensorBundleError(
                f"{where}: its {entry.size} bytes in {uri} fail their CRC32C check (corrupt)"
            )
        return data

    def _decode(self, data: bytes, fmt: str | None, count: int) -> tuple[float | int | bool, ...]:
        if fmt is not None:
            return struct.unpack(f"{self._byte_order}{count}{fmt}", data)
        # bfloat16 is the high half of a float32.
        halves = struct.unpack(f"{self._byte_order}{count}H", data)
        return struct.unpack(f"<{count}f", struct.pack(f"<{count}I", *(h << 16 for h in halves)))

    def _parse(self, message: Any, raw: bytes, what: str) -> Any:
        try:
            return message.FromString(raw)
        except DecodeError as err:
            raise TensorBundleError(f"{self.index_uri}: {what} does not parse: {err}") from None


def saved_model_global_step(storage: Storage, uri: str, files: Mapping[str, Entry]) -> int:
    """The `global_step` variable of the SavedModel at `uri` (`files`: its files, relative name
    -> Entry, from a listing). TensorBundleError says why there is none: no SavedModel, no
    variables, no `global_step`, not a scalar integer, or corrupt files."""
    if not any(name in files for name in SAVED_MODEL_FILENAMES):
        raise TensorBundleError(f"{uri} holds no saved_model.pb or saved_model.pbtxt")
    index = files.get(f"{SAVED_MODEL_VARIABLES}.index")
    if index is None:
        raise TensorBundleError(f"{uri} holds no {SAVED_MODEL_VARIABLES}.index")
    prefix = storage.join(uri, *SAVED_MODEL_VARIABLES.split("/"))
    tensor = TensorBundle(storage, prefix, index_size=index.size).read(GLOBAL_STEP)
    if tensor.dtype not in _INTEGERS or tensor.shape != ():
        shape = list(tensor.shape)
        raise TensorBundleError(
            f"{prefix}.index: {GLOBAL_STEP!r} is a {tensor.dtype} tensor of shape {shape}, "
            "not an integer scalar"
        )
    step = int(tensor.values[0])
    if step < 0:
        raise TensorBundleError(f"{prefix}.index: {GLOBAL_STEP!r} is negative ({step})")
    return step
