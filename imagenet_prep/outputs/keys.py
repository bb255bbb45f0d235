"""Output names from source keys: one documented, collision-free escaping (docs/outputs.md, "Keys").

A source's key (a file stem) names an output file (ImageFolder: ``<key><ext>``) or a sample in a shard
(WebDataset members ``<key>.<ext>``, the DALI index, Parquet ``path``, the ``<split>.csv`` manifests). Keys that
are plain ImageNet stems (``n01440764_10026``, ``ILSVRC2012_val_00000001``) are kept as they are; any other
character that is unsafe in one of those places is written ``%XX`` (its UTF-8 bytes, upper-case hex):

- always: ``%`` itself (so the escaping is injective: two keys never share a name), ``/`` and ``\\``, every
  non-printable character (control characters such as CR, LF and NUL, line and paragraph separators, Unicode
  spaces other than the ASCII space, format characters), and a leading ``.`` (no hidden file, and never the temp
  prefix ``.tmp-`` the cleaner deletes);
- in shards also ``.`` (webdataset splits a member name at its first dot) and the space (the DALI index is
  space-separated).

In one shard, a key met again (one stem in two classes) becomes ``<key>%%<wnid>`` (``%%`` never occurs in an
escaped key), and a further repeat gets ``%%<n>``: never a duplicate member name.
"""

from __future__ import annotations

_ALWAYS = frozenset("%/\\")
_IN_SHARDS = frozenset(". ")


def _byte_escapes(char: str) -> str:
    try:
        data = char.encode("utf-8", "surrogateescape")  # a file name's undecodable byte: that byte
    except UnicodeEncodeError:
        data = char.encode("utf-8", "surrogatepass")
    return "".join(f"%{byte:02X}" for byte in data)


def _escape(key: str, unsafe: frozenset[str]) -> str:
    if key.isprintable() and key.isascii() and not (unsafe & set(key)) and not key.startswith("."):
        return key  # the common case: one scan, no copy
    chars = [_byte_escapes(char) if char in unsafe or not char.isprintable() else char for char in key]
    if chars and chars[0] == ".":
        chars[0] = "%2E"
    return "".join(chars)


def file_key(key: str) -> str:
    """The name of a key's file (ImageFolder ``<key><ext>``)."""
    return _escape(key, _ALWAYS)


def shard_key(key: str) -> str:
    """A key as a sample of a shard (WebDataset, DALI index, Parquet path, shard manifests)."""
    return _escape(key, _ALWAYS | _IN_SHARDS)


class ShardKeys:
    """The keys of one shard, as its samples are added in order: a key met again gets its class (then a count)
    after ``%%``, so a shard never holds two samples of one name (webdataset refuses such a shard)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def key(self, key: str, wnid: str) -> str:
        name = shard_key(key)
        if name in self._seen:
            base = f"{name}%%{shard_key(wnid)}"
            name, count = base, 1
            while name in self._seen:
                count += 1
                name = f"{base}%%{count}"
        self._seen.add(name)
        return name
