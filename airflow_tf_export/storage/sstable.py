"""Reading one LevelDB-format table (SSTable) through Storage range reads, without TensorFlow.

TensorFlow writes the `.index` file of a tensor bundle (a checkpoint, or a SavedModel's
`variables/`) in this format, uncompressed. Layout, integers little-endian: data blocks, a
metaindex block, an index block, then a 48-byte footer (the metaindex and the index block
handles, each a varint64 offset and size, zero padding, and an 8-byte magic number). Every
block is followed by a type byte (0: uncompressed) and the masked CRC32C of the block and that
byte. A block holds prefix-compressed entries (varint32 shared key length, unshared key
length and value length, then the unshared key bytes and the value), then the restart offsets
(uint32 each) and their count (uint32). The index block maps a key at or after the last key
of each data block to that block's handle. Keys are compared bytewise.

The tail of the file (footer, index block and, for a small table, everything) is fetched in
one ranged read; blocks before it are read one range each. Every block's CRC32C is checked.
"""

from __future__ import annotations

import bisect
import struct

import google_crc32c

from airflow_tf_export.storage.base import Storage, StorageError, StorageNotFoundError

FOOTER_BYTES = 48
TABLE_MAGIC = 0xDB4775248B80FB57
BLOCK_TRAILER_BYTES = 5
TAIL_BYTES = 64 * 1024
_UNCOMPRESSED = 0
_CRC_MASK_DELTA = 0xA282EAD8


class TableError(StorageError):
    """A table cannot be read: not an SSTable, compressed, truncated or corrupt."""


def masked_crc32c(data: bytes) -> int:
    """CRC32C of `data`, masked as LevelDB and TensorFlow store checksums next to data."""
    crc = google_crc32c.value(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _CRC_MASK_DELTA) & 0xFFFFFFFF


def read_varint(data: bytes, pos: int, limit: int | None = None) -> tuple[int, int]:
    """The unsigned varint at `pos` (at most 10 bytes, ending before `limit`) and the position
    after it; ValueError when it runs past the end."""
    end = len(data) if limit is None else limit
    value = shift = 0
    for index in range(pos, min(pos + 10, end)):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, index + 1
        shift += 7
    raise ValueError(f"truncated or overlong varint at byte {pos}")


class _RangeFile:
    """Byte ranges of one file: ranges inside its tail come from one read of that tail."""

    def __init__(self, storage: Storage, uri: str, size: int) -> None:
        self.storage = storage
        self.uri = uri
        self.size = size
        self._tail_start = max(0, size - TAIL_BYTES)
        self._tail = self._fetch(self._tail_start, size)

    def read(self, start: int, end: int) -> bytes:
        """Bytes `[start, end)`; TableError when the range is outside the file."""
        if not 0 <= start <= end <= self.size:
            raise TableError(
                f"{self.uri}: block [{start}, {end}) lies outside the file ({self.size} bytes)"
            )
        if start >= self._tail_start:
            return self._tail[start - self._tail_start : end - self._tail_start]
        return self._fetch(start, end)

    def _fetch(self, start: int, end: int) -> bytes:
        try:
            data = self.storage.read_bytes(self.uri, start, end)
        except StorageNotFoundError:
            raise TableError(f"{self.uri} does not exist (deleted while being read?)") from None
        if len(data) != end - start:
            raise TableError(
                f"{self.uri}: read {len(data)} bytes at [{start}, {end}), expected "
                f"{end - start}: the file is shorter than listed (changed while being read?)"
            )
        return data


class Table:
    """The entries of one SSTable, looked up by key without reading the whole file.

    `size` is the file's size when the caller knows it from a listing (saves a request).
    """

    def __init__(self, storage: Storage, uri: str, size: int | None = None) -> None:
        self.uri = uri
        file_size = storage.size(uri) if size is None else size
        if file_size < FOOTER_BYTES:
            raise TableError(
                f"{uri} has {file_size} bytes, fewer than the {FOOTER_BYTES}-byte table footer"
            )
        self._file = _RangeFile(storage, uri, file_size)
        self._last_block: tuple[int, list[tuple[bytes, bytes]]] | None = None
        footer = self._file.read(file_size - FOOTER_BYTES, file_size)
        (magic,) = struct.unpack("<Q", footer[-8:])
        if magic != TABLE_MAGIC:
            raise TableError(f"{uri} is not an SSTable: its footer ends in {magic:#018x}")
        try:
            _metaindex_offset, pos = read_varint(footer, 0, FOOTER_BYTES - 8)
            _metaindex_size, pos = read_varint(footer, pos, FOOTER_BYTES - 8)
            index_offset, pos = read_varint(footer, pos, FOOTER_BYTES - 8)
            index_size, _ = read_varint(footer, pos, FOOTER_BYTES - 8)
        except ValueError as err:
            raise TableError(f"{uri}: footer: {err}") from None
        index = self._block(index_offset, index_size)
        self._index_keys = [key for key, _ in index]
        self._index_handles = [self._handle(value) for _, value in index]

    def get(self, key: bytes) -> bytes | None:
        """The value stored under `key`, or None."""
        at = bisect.bisect_left(self._index_keys, key)
        if at == len(self._index_keys):
            return None
        entries = self._block(*self._index_handles[at])
        keys = [k for k, _ in entries]
        found = bisect.bisect_left(keys, key)
        if found < len(keys) and keys[found] == key:
            return entries[found][1]
        return None

    def _handle(self, value: bytes) -> tuple[int, int]:
        try:
            offset, pos = read_varint(value, 0)
            size, _ = read_varint(value, pos)
        except ValueError as err:
            raise TableError(f"{self.uri}: index entry: {err}") from None
        return offset, size

    def _block(self, offset: int, size: int) -> list[tuple[bytes, bytes]]:
        """The entries of the block at `offset` (`size` bytes before its trailer), checked.
        The last block read is kept: a bundle's header and its first tensors share one."""
        if self._last_block is not None and self._last_block[0] == offset:
            return self._last_block[1]
        entries = self._read_block(offset, size)
        self._last_block = (offset, entries)
        return entries

    def _read_block(self, offset: int, size: int) -> list[tuple[bytes, bytes]]:
        raw = self._file.read(offset, offset + size + BLOCK_TRAILER_BYTES)
        contents, kind = raw[:size], raw[size]
        (stored,) = struct.unpack("<I", raw[size + 1 :])
        if masked_crc32c(raw[: size + 1]) != stored:
            raise TableError(
                f"{self.uri}: the block at byte {offset} ({size} bytes) fails its CRC32C check"
            )
        if kind != _UNCOMPRESSED:
            raise TableError(
                f"{self.uri}: the block at byte {offset} has compression type {kind}; only "
                "uncompressed tables (as TensorFlow writes tensor bundle indexes) are read"
            )
        try:
            return _entries(contents)
        except (ValueError, IndexError, struct.error) as err:
            raise TableError(
                f"{self.uri}: the block at byte {offset} is malformed: {err}"
            ) from None


def _entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """Decode the prefix-compressed entries of a block's contents, in order."""
    if len(block) < 4:
        raise ValueError(f"{len(block)} bytes, too short for the restart count")
    (restarts,) = struct.unpack("<I", block[-4:])
    limit = len(block) - 4 - 4 * restarts
    if limit < 0:
        raise ValueError(f"{restarts} restarts do not fit in {len(block)} bytes")
    entries: list[tuple[bytes, bytes]] = []
    key = b""
    pos = 0
    while pos < limit:
        shared, pos = read_varint(block, pos, limit)
        unshared, pos = read_varint(block, pos, limit)
        value_size, pos = read_varint(block, pos, limit)
        if shared > len(key) or pos + unshared + value_size > limit:
            raise ValueError(f"entry at byte {pos} overruns the block")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + value_size]))
        pos += value_size
    return entries
