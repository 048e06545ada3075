"""Read a TensorFlow checkpoint (V2 "tensor bundle") without TensorFlow.

A checkpoint with prefix ``P`` is ``P.index`` plus data shards
``P.data-00000-of-0000N``. (musicnn saved its checkpoints with an empty file name, so the
prefix is a folder: ``MSD_musicnn/.index``; pass the folder and it is read that way.)

``P.index`` is an SSTable in LevelDB's table format:

- a 48-byte footer at the end: the metaindex and index BlockHandles (each two varint64s,
  offset and size), zero padding to 40 bytes, then the magic number
  ``0xdb4775248b80fb57`` as a little-endian fixed64;
- the index block maps a separator key to the BlockHandle of each data block;
- every block is followed by a 5-byte trailer: a compression type byte (0 = none, the only
  kind TensorFlow writes; 1 = snappy is refused with a clear error) and the masked crc32c
  of the block plus its type byte;
- a block is a run of entries ``varint32 shared, varint32 non_shared, varint32 value_len,
  key[shared:] bytes, value bytes`` (keys share a prefix with the entry before them),
  then ``uint32`` restart offsets and their ``uint32`` count.

The empty key ``""`` holds a ``BundleHeaderProto`` (1 num_shards, 2 endianness, 3 version);
every other key is a tensor name whose value is a ``BundleEntryProto`` (1 dtype, 2 shape =
``TensorShapeProto`` with repeated 2 dim {1 size, 2 name}, 3 shard_id, 4 offset, 5 size,
6 crc32c fixed32 (masked), 7 slices). Both are decoded here with a small protobuf wire-format
parser. A tensor's bytes are ``size`` raw bytes at ``offset`` of its shard, little-endian
unless the header says otherwise; their masked crc32c is checked.

Missing or damaged files raise :class:`~moodsic_live.errors.ModelError` with one line that
names the file and the fix.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moodsic_live.errors import ModelError

FIX = "rebuild with `moodsic-live models build --force`"
MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
_TRAILER = 5  # compression type byte + masked crc32c

# TensorFlow DataType enum (types.proto) -> numpy dtype (little-endian); 7 is DT_STRING.
DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"), 5: np.dtype("<i2"),
    6: np.dtype("i1"), 9: np.dtype("<i8"), 10: np.dtype("?"), 17: np.dtype("<u2"), 19: np.dtype("<f2"),
    22: np.dtype("<u4"), 23: np.dtype("<u8"),
}
DT_STRING = 7
DTYPE_NAMES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
               9: "int64", 10: "bool", 14: "bfloat16", 17: "uint16", 19: "float16", 22: "uint32", 23: "uint64"}


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lives: ``dtype`` is TensorFlow's name for it ("float32", ...)."""

    dtype: str
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int | None = None  # unmasked; None when the entry carries none
    dtype_enum: int = 0
    sliced: bool = False  # a partitioned variable (not supported by read_bundle)


@dataclass(frozen=True)
class BundleHeader:
    num_shards: int = 1
    big_endian: bool = False
    producer: int = 0


class _Corrupt(Exception):
    """Internal: a structural problem, turned into a ModelError naming the file."""


# --- crc32c (Castagnoli), masked as LevelDB/TensorFlow store it --------------------------------

def _crc_table() -> np.ndarray:
    table = np.zeros(256, np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table[i] = c
    return table


_TABLE = _crc_table()
_TABLE_LIST = [int(v) for v in _TABLE]
_LANE = 2048  # bytes per lane in the vectorised crc
_SHIFT_TABLES: list[list[int]] | None = None


def _raw_update(state: int, data: bytes) -> int:
    t = _TABLE_LIST
    for byte in data:
        state = t[(state ^ byte) & 0xFF] ^ (state >> 8)
    return state


def _shift_tables() -> list[list[int]]:
    """Byte tables of the linear map 'run the raw crc register over _LANE zero bytes'."""
    global _SHIFT_TABLES
    if _SHIFT_TABLES is None:
        basis = np.array([1 << i for i in range(32)], np.uint32)
        for _ in range(_LANE):
            basis = _TABLE[basis & 0xFF] ^ (basis >> 8)
        images = [int(v) for v in basis]
        tables = []
        for p in range(4):
            row = []
            for v in range(256):
                acc = 0
                for bit in range(8):
                    if v >> bit & 1:
                        acc ^= images[8 * p + bit]
                row.append(acc)
            tables.append(row)
        _SHIFT_TABLES = tables
    return _SHIFT_TABLES


def crc32c(data: bytes | memoryview) -> int:
    """CRC-32C of ``data``. Long inputs run as many numpy lanes combined by GF(2) shifts."""
    data = memoryview(data).cast("B")
    n = len(data)
    state = 0xFFFFFFFF
    lanes = n // _LANE
    if lanes >= 8:
        block = np.frombuffer(data[: lanes * _LANE], np.uint8).reshape(lanes, _LANE).T.copy()
        regs = np.zeros(lanes, np.uint32)
        for row in block:  # every lane's raw crc from a zero register
            regs = _TABLE[(regs ^ row) & 0xFF] ^ (regs >> 8)
        z0, z1, z2, z3 = _shift_tables()
        for r in regs.tolist():  # crc(A||B) = shift_|B|(crc(A)) ^ crc0(B), lane by lane
            state = z0[state & 0xFF] ^ z1[state >> 8 & 0xFF] ^ z2[state >> 16 & 0xFF] ^ z3[state >> 24] ^ r
        data = data[lanes * _LANE:]
    return _raw_update(state, bytes(data)) ^ 0xFFFFFFFF


def unmask(masked: int) -> int:
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# --- protobuf wire format and varints ----------------------------------------------------------

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _Corrupt("a varint runs past the end of its record")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Corrupt("a varint is longer than 10 bytes")


def _int64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _fields(buf: bytes):
    """Yield (field number, wire type, value): int for varint/fixed, bytes for length-delimited."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise _Corrupt("a fixed64 field runs past the end of its record")
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise _Corrupt("a length-delimited field runs past the end of its record")
            value, pos = bytes(buf[pos:pos + length]), pos + length
        elif wire == 5:
            if pos + 4 > len(buf):
                raise _Corrupt("a fixed32 field runs past the end of its record")
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise _Corrupt(f"protobuf wire type {wire} is not valid here")
        if number == 0:
            raise _Corrupt("protobuf field number 0")
        yield number, wire, value


def _shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for number, wire, value in _fields(buf):
        if number == 2 and wire == 2:
            size = 0
            for n2, w2, v2 in _fields(value):
                if n2 == 1 and w2 == 0:
                    size = _int64(v2)
            dims.append(size)
        elif number == 3 and wire == 0 and value:
            raise _Corrupt("a tensor of unknown rank")
    return tuple(dims)


def _entry(buf: bytes) -> TensorEntry:
    dtype = shard = offset = size = 0
    shape: tuple[int, ...] = ()
    crc = None
    sliced = False
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 0:
            dtype = value
        elif number == 2 and wire == 2:
            shape = _shape(value)
        elif number == 3 and wire == 0:
            shard = value
        elif number == 4 and wire == 0:
            offset = _int64(value)
        elif number == 5 and wire == 0:
            size = _int64(value)
        elif number == 6 and wire == 5:
            crc = unmask(value)
        elif number == 7:
            sliced = True
    if offset < 0 or size < 0 or any(d < 0 for d in shape):
        raise _Corrupt("a tensor entry with a negative offset, size or dimension")
    return TensorEntry(DTYPE_NAMES.get(dtype, f"dtype#{dtype}"), shape, shard, offset, size, crc, dtype, sliced)


def _header(buf: bytes) -> BundleHeader:
    num_shards, big, producer = 1, False, 0
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 0:
            num_shards = value
        elif number == 2 and wire == 0:
            big = value == 1
        elif number == 3 and wire == 2:
            for n2, w2, v2 in _fields(value):
                if n2 == 1 and w2 == 0:
                    producer = v2
    if num_shards < 1:
        raise _Corrupt(f"the bundle header says {num_shards} shards")
    return BundleHeader(num_shards, big, producer)


# --- the SSTable -------------------------------------------------------------------------------

def _handle(buf: bytes, pos: int) -> tuple[tuple[int, int], int]:
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return (offset, size), pos


def _block(table: bytes, handle: tuple[int, int]) -> bytes:
    offset, size = handle
    end = offset + size
    if end + _TRAILER > len(table) - FOOTER_SIZE:
        raise _Corrupt(f"a block at offset {offset} runs past the end of the table (truncated?)")
    kind = table[end]
    stored = struct.unpack_from("<I", table, end + 1)[0]
    if mask(crc32c(table[offset:end + 1])) != stored:
        raise _Corrupt(f"checksum mismatch in the block at offset {offset}")
    if kind == 1:
        raise _Corrupt("snappy-compressed blocks are not supported (TensorFlow writes uncompressed ones)")
    if kind != 0:
        raise _Corrupt(f"unknown block compression type {kind}")
    return table[offset:end]


def _block_entries(block: bytes):
    if len(block) < 4:
        raise _Corrupt("a block shorter than its restart count")
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 - 4 * restarts
    if restarts < 1 or limit < 0:
        raise _Corrupt("a block with an impossible restart array")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        if shared > len(key) or pos + non_shared + value_len > limit:
            raise _Corrupt("a block entry runs past its block")
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        yield key, block[pos:pos + value_len]
        pos += value_len


def _table_items(table: bytes):
    if len(table) < FOOTER_SIZE:
        raise _Corrupt(f"{len(table)} bytes is shorter than the 48-byte table footer (truncated?)")
    footer = table[-FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, 40)[0] != MAGIC:
        raise _Corrupt("bad magic number: not a TensorFlow checkpoint index, or truncated")
    _meta, pos = _handle(footer, 0)
    index, _ = _handle(footer, pos)
    for _sep, value in _block_entries(_block(table, index)):
        handle, _ = _handle(value, 0)
        yield from _block_entries(_block(table, handle))


# --- public API --------------------------------------------------------------------------------

def _prefix(prefix: str | os.PathLike) -> str:
    text = os.fspath(prefix)
    if os.path.isdir(text):  # an empty file-name prefix inside this folder (musicnn's checkpoints)
        text = os.path.join(text, "")
    return text


def _index_path(prefix: str) -> Path:
    return Path(prefix + ".index")


def _read_index(prefix: str) -> tuple[BundleHeader, dict[str, TensorEntry]]:
    path = _index_path(prefix)
    try:
        table = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"checkpoint index {path} is missing; {FIX}") from None
    except OSError as exc:
        raise ModelError(f"checkpoint index {path} cannot be read ({exc.strerror}); {FIX}") from None
    header = None
    entries: dict[str, TensorEntry] = {}
    try:
        last = None
        for key, value in _table_items(table):
            if last is not None and key <= last:
                raise _Corrupt("keys out of order")
            last = key
            if key == b"":
                header = _header(value)
            else:
                entries[key.decode("utf-8")] = _entry(value)
    except (_Corrupt, UnicodeDecodeError) as exc:
        raise ModelError(f"checkpoint index {path} is corrupt ({exc}); {FIX}") from None
    if header is None:
        raise ModelError(f"checkpoint index {path} is corrupt (no bundle header); {FIX}")
    for name, e in entries.items():
        if e.shard >= header.num_shards:
            raise ModelError(f"checkpoint index {path} is corrupt (tensor {name!r} is in shard {e.shard} "
                             f"of {header.num_shards}); {FIX}")
    return header, entries


def read_bundle_index(prefix: str | os.PathLike) -> dict[str, TensorEntry]:
    """Every tensor of the checkpoint ``prefix``: name -> where and what it is."""
    return _read_index(_prefix(prefix))[1]


def shard_path(prefix: str | os.PathLike, shard: int, num_shards: int) -> Path:
    return Path(f"{_prefix(prefix)}.data-{shard:05d}-of-{num_shards:05d}")


def _decode(name: str, e: TensorEntry, raw: bytes, big_endian: bool, where: Path) -> np.ndarray:
    count = int(np.prod(e.shape, dtype=np.int64))
    if e.dtype_enum == DT_STRING:
        pos, lengths = 0, []
        try:
            for _ in range(count):
                n, pos = _varint(raw, pos)
                lengths.append(n)
        except _Corrupt:
            raise ModelError(f"checkpoint data {where} is corrupt (string tensor {name!r}); {FIX}") from None
        pos += 4  # masked crc32c of the lengths
        out = np.empty(count, dtype=object)
        for i, n in enumerate(lengths):
            out[i] = raw[pos:pos + n]
            pos += n
        if pos != len(raw):
            raise ModelError(f"checkpoint data {where} is corrupt (string tensor {name!r}); {FIX}")
        return out.reshape(e.shape)
    dtype = DTYPES[e.dtype_enum]
    if big_endian:
        dtype = dtype.newbyteorder(">")
    if count * dtype.itemsize != e.size:
        raise ModelError(f"checkpoint index for {where} is corrupt (tensor {name!r}: {e.size} bytes for shape "
                         f"{list(e.shape)} of {e.dtype}); {FIX}")
    return np.frombuffer(raw, dtype).astype(dtype.newbyteorder("="), copy=True).reshape(e.shape)


def read_bundle(prefix: str | os.PathLike, names=None, *, verify: bool = True) -> dict[str, np.ndarray]:
    """The tensors of checkpoint ``prefix`` as numpy arrays.

    ``names``: an iterable of tensor names, or a predicate ``name -> bool``; None reads every
    tensor whose dtype numpy can hold (bfloat16, resource and variant tensors are skipped;
    asking for one by name is an error). ``verify`` checks each tensor's crc32c.
    """
    text = _prefix(prefix)
    header, entries = _read_index(text)
    index_path = _index_path(text)
    if names is None:
        wanted = [n for n, e in entries.items() if e.dtype_enum in DTYPES or e.dtype_enum == DT_STRING]
    elif callable(names):
        wanted = [n for n in entries if names(n)]
    else:
        wanted = list(names)
        missing = [n for n in wanted if n not in entries]
        if missing:
            raise ModelError(f"checkpoint {index_path} has no tensor {missing[0]!r} "
                             f"({len(missing)} missing); it is not the expected checkpoint; {FIX}")
    out: dict[str, np.ndarray] = {}
    by_shard: dict[int, list[str]] = {}
    for name in wanted:
        e = entries[name]
        if e.dtype_enum not in DTYPES and e.dtype_enum != DT_STRING:
            raise ModelError(f"checkpoint {index_path}: tensor {name!r} has dtype {e.dtype}, which cannot be read")
        if e.sliced:
            raise ModelError(f"checkpoint {index_path}: tensor {name!r} is partitioned into slices; not supported")
        by_shard.setdefault(e.shard, []).append(name)
    for shard, shard_names in sorted(by_shard.items()):
        path = shard_path(text, shard, header.num_shards)
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            raise ModelError(f"checkpoint data {path} is missing; {FIX}") from None
        except OSError as exc:
            raise ModelError(f"checkpoint data {path} cannot be read ({exc.strerror}); {FIX}") from None
        with fh:
            length = os.fstat(fh.fileno()).st_size
            for name in sorted(shard_names, key=lambda n: entries[n].offset):
                e = entries[name]
                if e.offset + e.size > length:
                    raise ModelError(f"checkpoint data {path} is truncated ({length} bytes; tensor {name!r} "
                                     f"ends at {e.offset + e.size}); {FIX}")
                fh.seek(e.offset)
                raw = fh.read(e.size)
                if verify and e.crc32c is not None and crc32c(raw) != e.crc32c:
                    raise ModelError(f"checkpoint data {path} is corrupt (checksum of tensor {name!r}); {FIX}")
                out[name] = _decode(name, e, raw, header.big_endian, path)
    return {n: out[n] for n in wanted}
