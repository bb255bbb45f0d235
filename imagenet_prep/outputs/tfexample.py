"""What the TFRecord outputs (tfrecord, tfds) share: the ``tf.train.Example`` message and the TFRecord framing,
with no TensorFlow.

- ``Example``: TensorFlow's ``example.proto`` / ``feature.proto`` messages (package ``tensorflow``), declared to
  the protobuf runtime from a descriptor built here (the same field numbers and packing as TensorFlow's files),
  in a private descriptor pool (no clash with TensorFlow's own classes when both are loaded). Serialized with
  ``deterministic=True``: the feature map in key order, so the same features give the same bytes.
- framing (TFRecord): u64 little-endian payload length, u32 masked CRC32C of those 8 bytes, the payload, u32
  masked CRC32C of the payload; masked = ((crc >> 15) | (crc << 17)) + 0xa282ead8 mod 2**32. CRC32C from
  ``google-crc32c`` (a C implementation).
- the DALI index (``tfrecord2idx``'s text format): one ``<offset> <size>`` line per record, the offset of its
  length field and the size of the whole framed record.

Both libraries are the ``[tfrecord]`` extra; a build that needs them and lacks them fails with one line.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from typing import Any, BinaryIO

from ..errors import UsageError

_MASK_DELTA = 0xA282EAD8
_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")
HEADER = 12  # length + its CRC
FOOTER = 4  # the payload's CRC


def require(output: str) -> None:
    """Fail with one line when the ``[tfrecord]`` extra is missing."""
    try:
        import google.protobuf  # noqa: F401
        import google_crc32c  # noqa: F401
    except ImportError:
        raise UsageError(
            f"The {output} output needs protobuf and google-crc32c: run `pip install 'imagenet-prep[tfrecord]'`."
        ) from None


@cache
def example_class() -> Any:
    """The ``tensorflow.Example`` message class (built once per process from its descriptor)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    proto = descriptor_pb2.FileDescriptorProto(
        name="imagenet_prep/tensorflow_example.proto", package="tensorflow", syntax="proto3"
    )
    field = descriptor_pb2.FieldDescriptorProto
    repeated, optional = field.LABEL_REPEATED, field.LABEL_OPTIONAL

    def message(name: str, fields: Sequence[tuple[str, int, int, int, str]]) -> Any:
        made = proto.message_type.add(name=name)
        for fname, number, label, ftype, type_name in fields:
            added = made.field.add(name=fname, number=number, label=label, type=ftype)
            if type_name:
                added.type_name = type_name
            if ftype in (field.TYPE_FLOAT, field.TYPE_INT64):
                added.options.packed = True  # as in feature.proto
        return made

    message("BytesList", [("value", 1, repeated, field.TYPE_BYTES, "")])
    message("FloatList", [("value", 1, repeated, field.TYPE_FLOAT, "")])
    message("Int64List", [("value", 1, repeated, field.TYPE_INT64, "")])
    feature = message(
        "Feature",
        [
            ("bytes_list", 1, optional, field.TYPE_MESSAGE, ".tensorflow.BytesList"),
            ("float_list", 2, optional, field.TYPE_MESSAGE, ".tensorflow.FloatList"),
            ("int64_list", 3, optional, field.TYPE_MESSAGE, ".tensorflow.Int64List"),
        ],
    )
    feature.oneof_decl.add(name="kind")
    for added in feature.field:
        added.oneof_index = 0
    features = message(
        "Features", [("feature", 1, repeated, field.TYPE_MESSAGE, ".tensorflow.Features.FeatureEntry")]
    )
    entry = features.nested_type.add(name="FeatureEntry")
    entry.field.add(name="key", number=1, label=optional, type=field.TYPE_STRING)
    entry.field.add(
        name="value", number=2, label=optional, type=field.TYPE_MESSAGE, type_name=".tensorflow.Feature"
    )
    entry.options.map_entry = True
    message("Example", [("features", 1, optional, field.TYPE_MESSAGE, ".tensorflow.Features")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.Example"))


def encode_example(features: Mapping[str, tuple[str, Sequence[Any]]]) -> bytes:
    """A serialized ``tf.train.Example``: ``features`` maps a key to ``(kind, values)``, kind ``"bytes"``,
    ``"int64"`` or ``"float"`` (str values are UTF-8 encoded). Deterministic: the same features, the same bytes."""
    example = example_class()()
    entries = example.features.feature
    for key, (kind, values) in features.items():
        target = getattr(entries[key], f"{kind}_list")
        target.SetInParent()  # an empty list keeps its kind (a box list with no box)
        if kind == "bytes":
            target.value.extend(v.encode("utf-8") if isinstance(v, str) else v for v in values)
        else:
            target.value.extend(values)
    return bytes(example.SerializeToString(deterministic=True))


def decode_example(payload: bytes) -> dict[str, list[Any]]:
    """A serialized Example's features: key -> its list of values (bytes, ints or floats)."""
    example = example_class()()
    example.ParseFromString(payload)
    decoded: dict[str, list[Any]] = {}
    for key, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        decoded[key] = list(getattr(feature, kind).value) if kind else []
    return decoded


def _masked_crc(data: bytes) -> int:
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(payload: bytes) -> bytes:
    """One TFRecord record: length, its masked CRC, the payload, its masked CRC."""
    length = _LENGTH.pack(len(payload))
    return length + _CRC.pack(_masked_crc(length)) + payload + _CRC.pack(_masked_crc(payload))


class FramingError(ValueError):
    """A TFRecord file's framing is damaged (a length, a CRC, or a truncated record)."""


def read_records(handle: BinaryIO) -> Iterator[tuple[int, int, bytes]]:
    """(offset, framed size, payload) of every record of a TFRecord file, CRCs verified."""
    offset = 0
    while True:
        head = handle.read(HEADER)
        if not head:
            return
        if len(head) < HEADER:
            raise FramingError(f"truncated record header at byte {offset}")
        length_bytes, (crc,) = head[:8], _CRC.unpack(head[8:])
        if _masked_crc(length_bytes) != crc:
            raise FramingError(f"bad length CRC at byte {offset}")
        (length,) = _LENGTH.unpack(length_bytes)
        body = handle.read(length + FOOTER)
        if len(body) < length + FOOTER:
            raise FramingError(f"truncated record at byte {offset}")
        payload = body[:length]
        if _masked_crc(payload) != _CRC.unpack(body[length:])[0]:
            raise FramingError(f"bad payload CRC in the record at byte {offset}")
        size = HEADER + length + FOOTER
        yield offset, size, payload
        offset += size


def dali_index(records: Sequence[tuple[int, int]]) -> bytes:
    """DALI's tfrecord2idx text: ``<offset> <size>`` per record."""
    return "".join(f"{offset} {size}\n" for offset, size in records).encode("ascii")
