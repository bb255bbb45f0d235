"""Tar index and readers: find every image's (offset, size) in the ILSVRC2012 archives, never extracting.

The train archive is a tar of 1000 ``<wnid>.tar`` class tars, each a tar of ``<wnid>_<n>.JPEG`` images; the
val archive is a flat tar of ``ILSVRC2012_val_<8 digits>.JPEG``. Indexing reads one 512-byte header per
member and skips member data: plain headers (what GNU tar and tarfile write) are parsed here, ~10x faster than
``tarfile``; a tar holding anything else is parsed by the stdlib ``tarfile`` (on a seekable view, so it skips
data with a seek too), with the same results either way (see :func:`scan_tar`). A :class:`TarMember` records
the absolute offset of its data in the OUTER file, so reading an image (even one inside a class tar) is a
single positioned read on the archive.

Everything is read through a :class:`ByteSource` (``size`` + ``read_at``), so an HTTP Range source can plug
in later. Member names are untrusted: a member whose name or type could escape a folder or alias another file
is refused (recorded in ``.refused`` with a reason) and never returned; nothing here writes a member to disk.

The index of the ILSVRC2012 archives and its cache are in :mod:`.tar_index`.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
import zlib
from dataclasses import dataclass

from ..errors import ArchiveError
from .bytesource import ByteSource, FileByteSource, RangeView, as_byte_source, describe_source

MAX_NAME_BYTES = 200  # file systems allow 255; the build's temp names add ~20 (real names have <= 30)
_BLOCK = tarfile.BLOCKSIZE
FIX_HINT = "re-download it (`imagenet-prep fetch`) or check it with `imagenet-prep verify`"
_SPARSE = (
    "sparse file (GNU/pax sparse member: its data is not stored contiguously, so it cannot be read by offset)"
)
MAX_HEADER_CHAIN = 64 * 1024  # PAX / GNU long-name headers before a member's own header: a few KB at most


# ---------------------------------------------------------------------------------------------- records
@dataclass(frozen=True, slots=True)  # slots: a full train index holds 1.28M of these
class TarMember:
    """An image in an archive: ``offset`` is where its data starts in the outer archive file."""

    name: str
    offset: int
    size: int
    header_offset: int | None = None  # where its header chain starts (PAX / long-name headers included)


@dataclass(frozen=True, slots=True)
class ClassTar:
    """One ``<wnid>.tar`` inside the train archive: ``offset`` is where its data (a whole tar) starts."""

    wnid: str
    name: str
    offset: int
    size: int


def read_member(source: ByteSource | str | os.PathLike[str], member: TarMember) -> bytes:
    """The bytes of one member: one positioned read. A short read means the archive is truncated."""
    src = as_byte_source(source)
    try:
        data = src.read_at(member.offset, member.size)
    finally:
        if src is not source and isinstance(src, FileByteSource):
            src.close()
    if len(data) != member.size:
        raise ArchiveError(
            f"{describe_source(src)} is truncated: member {member.name} needs {member.size} bytes at offset "
            f"{member.offset} but only {len(data)} are there; {FIX_HINT}."
        )
    return data


def member_header_problem(
    source: ByteSource, header_offset: int, data_offset: int, size: int, name: str
) -> str | None:
    """Why the tar header chain at ``header_offset`` does not describe a regular member ``name`` of ``size`` bytes
    whose data starts at ``data_offset`` (None: it does). One small read; a plain header is parsed here, anything
    else by tarfile (the same answers). The name may be the member's full path or its last part(s) (``name`` is
    what the index recorded)."""
    length = data_offset - header_offset
    if not _BLOCK <= length <= MAX_HEADER_CHAIN or length % _BLOCK:
        return f"no tar header ends at offset {data_offset}"
    chain = source.read_at(header_offset, length)
    if len(chain) != length:
        return "the archive ends before the member's header"
    if length == _BLOCK:
        plain = _plain_file_header(chain)  # the usual header, without tarfile (~10x cheaper per image)
        if plain is not None:
            found, found_size = plain
            if found != name and not found.endswith("/" + name):
                return f"the header there names {found!r}"
            if found_size != size:
                return f"the header there gives {found_size} bytes, the index {size}"
            return None
    info: tarfile.TarInfo | None
    try:
        if length == _BLOCK:  # the usual case (ustar/GNU): the member's own header, parsed directly
            info = tarfile.TarInfo.frombuf(chain, tarfile.ENCODING, "surrogateescape")
            info.offset_data = _BLOCK
        else:  # PAX / GNU long-name headers first: let tarfile walk the chain
            with tarfile.open(fileobj=io.BytesIO(chain), mode="r:") as tar:
                info = tar.next()
    except tarfile.TarError as exc:
        return f"no valid tar header there ({exc})"
    if info is None:
        return "no tar header there (an end-of-archive block)"
    if info.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE):
        return "the header there is an extension header, not the member's own"
    found = info.name[2:] if info.name.startswith("./") else info.name
    if found != name and not found.endswith("/" + name):
        return f"the header there names {found!r}"
    if not info.isreg() or info.issparse():
        return f"the header there is not a regular file ({found!r})"
    if info.size != size:
        return f"the header there gives {info.size} bytes, the index {size}"
    if info.offset_data != length:
        return "the member's data does not start where the index says"
    return None


# ------------------------------------------------------------------------------------------ tar scanning
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")  # control characters and DEL
_DRIVE_RE = re.compile("[A-Za-z]:")
_PLAIN_NAME_RE = re.compile(rf"[A-Za-z0-9_][A-Za-z0-9_.+-]{{0,{MAX_NAME_BYTES - 1}}}")


def name_problem(name: str, *, flat: bool) -> str | None:
    """Why an untrusted member or file name is refused (None = fine): the one policy every source reader applies
    (tar, zip, tar.gz streams, Parquet paths, folders). ``flat``: no folders allowed at all."""
    if _PLAIN_NAME_RE.fullmatch(name):
        return None  # the usual name: passes every check below (no '/', no leading '.', short, ASCII)
    if name in ("", "."):
        return "not a file name"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "name is not valid UTF-8"
    if _CONTROL_RE.search(name):
        return "name holds control characters"
    if "\\" in name:
        return "name holds a backslash"
    if name.startswith("/") or _DRIVE_RE.match(name):
        return "absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "path with '..'"
    if flat and len(parts) > 1:
        return "name holds '/' (a folder) where a plain file name is expected"
    if parts[-1].startswith("."):
        # macOS '._x.JPEG' resource forks, and names that would collide with the build's own '.tmp-' files.
        return "hidden file name (starts with '.')"
    if len(parts[-1].encode("utf-8")) > MAX_NAME_BYTES:
        return f"name longer than {MAX_NAME_BYTES} bytes (no room for the output's temporary name)"
    return None


def type_problem(info: tarfile.TarInfo) -> str | None:
    """Why a tar member's type is refused (None = a regular file)."""
    return _type_problem(info)


def member_problem(info: tarfile.TarInfo, name: str, seen: set[str], *, flat: bool) -> str | None:
    """Why a tar member named ``name`` is refused (None = kept, and ``name`` is then added to ``seen``, the names
    kept so far): the name policy, the type policy, then a name kept before. Seekable and streamed readers
    apply it alike."""
    problem = name_problem(name, flat=flat) or _type_problem(info)
    if problem is None and name in seen:
        problem = "duplicate name"
    if problem is None:
        seen.add(name)
    return problem


def _type_problem(info: tarfile.TarInfo) -> str | None:
    if info.issym():
        return f"symbolic link (to {info.linkname!r})"
    if info.islnk():
        return f"hard link (to {info.linkname!r})"
    if info.ischr() or info.isblk():
        return "device file"
    if info.isfifo():
        return "FIFO"
    if info.isdir():
        return "folder"
    if not info.isreg():
        return "not a regular file"
    if info.issparse():
        return _SPARSE
    # The stdlib's own extraction filter, as a second opinion (it never writes: it only inspects the member).
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is not None:
        try:
            data_filter(info, _FILTER_DEST)
        except tarfile.FilterError as exc:
            return f"refused by tarfile's data filter: {exc}"
    return None


def scan_tar(
    source: ByteSource, start: int, length: int, label: str, *, tolerate_cut_last: bool, flat: bool = True
) -> tuple[list[TarMember], list[tuple[str, str]]]:
    """Regular members of the tar at [start, start+length) with absolute data offsets, plus refusals.

    Raises ArchiveError for a non-tar, or a tar cut or garbled inside a header. A member whose data runs past
    the end is refused; then the whole tar is an error unless ``tolerate_cut_last`` (a class tar: its other
    images are still good data). ``flat=False`` accepts member names with folders (safe relative paths) and
    passes over folder entries silently (a tree such as ``imagenet-a/<wnid>/<name>.jpg``).

    A tar of plain headers only (files and folders, as GNU tar's default format and tarfile write them) is read
    by :func:`_scan_plain`; anything else (PAX or GNU long-name headers, links, devices, sparse files, odd number
    fields, a bad checksum, a cut or a missing end marker) is scanned again from its start by tarfile
    (:func:`_scan_tarfile`). Both give the same members, refusals and errors: the fast path only ever accepts
    what tarfile reads the same way.
    """
    head = source.read_at(start, min(length, 2))
    if head == b"\x1f\x8b":
        raise ArchiveError(
            f"{label} is gzip-compressed, but the ILSVRC2012 image archives are plain tars (images are read "
            f"by offset). Use the original archive; {FIX_HINT}."
        )
    plain = _scan_plain(source, start, length, flat=flat)
    if plain is not None:
        return plain
    return _scan_tarfile(source, start, length, label, tolerate_cut_last=tolerate_cut_last, flat=flat)


# The fast path. A header is "plain" when tarfile would read it as one regular member (or folder) with exactly
# these fields: number fields of octal digits ending in NUL or space (what GNU tar and tarfile write; base-256
# and space-padded forms go to tarfile), devmajor/devminor the same or all NUL, type '0', '5' or NUL, an empty
# ustar prefix, and a checksum that is the unsigned byte sum.
_PLAIN_FIELDS = re.compile(  # 100..157: mode, uid, gid, size, mtime, checksum; the type: a file or a folder
    rb"[0-7]{7}[\0 ][0-7]{7}[\0 ][0-7]{7}[\0 ]([0-7]{11})[\0 ][0-7]{11}[\0 ]([0-7]{6})[\0 ]{2}[05\0]"
)
_PLAIN_DEVICES = re.compile(rb"(?:[0-7]{7}[\0 ]|\0{8}){2}")  # 329..345: devmajor, devminor
_ZERO_BLOCK = bytes(_BLOCK)
_FILTER_DEST = "/nonexistent-imagenet-prep-dest"  # where tarfile's data filter pretends to extract to


def header_byte_sum(block: bytes | bytearray) -> int:
    """The unsigned byte sum of a 512-byte tar header, in C: adler32's low half is 1 + the byte sum mod 65521,
    exact for half a block (at most 256 * 255)."""
    with memoryview(block) as view:
        return (zlib.adler32(view[:256]) & 0xFFFF) + (zlib.adler32(view[256:]) & 0xFFFF) - 2


def _plain_header(block: bytes) -> tuple[str, int, bool] | None:
    """(name as stored, size, is a folder) of a plain header: ustar/GNU fields in octal, no ustar prefix, no
    device numbers, a right checksum; None for anything else (tarfile then judges it)."""
    fields = _PLAIN_FIELDS.fullmatch(block, 100, 157)
    # Not plain; or a ustar prefix (tarfile joins it to the name). Linkname, magic, version, uname and gname
    # (157..329) are not read for a regular member.
    if fields is None or block[345] or _PLAIN_DEVICES.fullmatch(block, 329, 345) is None:
        return None
    # The checksum: the byte sum with its own 8 bytes counted as spaces.
    if header_byte_sum(block) - sum(block[148:156]) + 256 != int(fields[2], 8):
        return None  # a bad (or signed) checksum: tarfile decides
    end = block.find(0, 0, 100)
    name = block[: end if end >= 0 else 100].decode(tarfile.ENCODING, "surrogateescape")
    folder = block[156] == 0x35 or (block[156] == 0 and name.endswith("/"))  # '5', or NUL and a '/'
    return name, int(fields[1], 8), folder


def _plain_file_header(block: bytes) -> tuple[str, int] | None:
    """(name, size) of a plain regular-file header (:func:`_plain_header`: tarfile reads it the same way), with
    a leading ``./`` dropped; None for anything else (a folder, a name ending in '/', ...), which tarfile then
    judges."""
    plain = _plain_header(block)
    if plain is None or plain[2] or plain[0].endswith("/"):
        return None
    name, size, _ = plain
    return (name[2:] if name.startswith("./") else name), size


def _scan_plain(
    source: ByteSource, start: int, length: int, *, flat: bool
) -> tuple[list[TarMember], list[tuple[str, str]]] | None:
    """:func:`scan_tar` for a tar whose members all have plain headers, without tarfile (~10x faster); None
    as soon as anything else turns up (the caller then scans the whole tar with tarfile)."""
    if getattr(tarfile, "data_filter", None) is not None and os.path.lexists(_FILTER_DEST):
        return None  # the filter's verdicts would depend on what is there: let it judge every member
    read_at = source.read_at
    members: list[TarMember] = []
    refused: list[tuple[str, str]] = []
    names: set[str] = set()
    pos = 0
    while True:
        if pos + _BLOCK > length:
            return None  # cut before the end marker
        block = read_at(start + pos, _BLOCK)
        if len(block) != _BLOCK:
            return None
        if block == _ZERO_BLOCK:
            return members, refused  # the end-of-archive marker (tarfile stops there too)
        plain = _plain_header(block)
        if plain is None:
            return None
        name, size, folder = plain
        data = pos + _BLOCK
        if folder:
            name = name.rstrip("/")
            if name.startswith("./"):
                name = name[2:]
            if flat and name not in ("", ".", "./"):  # a '.' root entry is noise, as on tarfile's path
                refused.append((name, name_problem(name, flat=True) or "folder"))
            pos = data  # tarfile skips no data after a folder's header
            continue
        if data + size > length:
            return None  # cut inside the data: tarfile's path refuses it or fails
        if name.startswith("./"):
            name = name[2:]
        # A regular file whose name passes these checks passes tarfile's data filter (a relative path without
        # '..' inside a destination that does not exist), so the filter is not asked here.
        problem = name_problem(name, flat=flat)
        if problem is None and name in names:
            problem = "duplicate name"
        if problem is None:
            names.add(name)
            members.append(TarMember(name, start + data, size, start + pos))
        elif name not in ("", ".", "./"):
            refused.append((name, problem))
        pos = data + -(-size // _BLOCK) * _BLOCK


def _scan_tarfile(
    source: ByteSource, start: int, length: int, label: str, *, tolerate_cut_last: bool, flat: bool
) -> tuple[list[TarMember], list[tuple[str, str]]]:
    """:func:`scan_tar` by tarfile: every kind of header, every refusal rule."""
    members: list[TarMember] = []
    refused: list[tuple[str, str]] = []
    names: set[str] = set()
    try:
        # 'r:' = plain tar: no compression sniffing, and tarfile seeks over member data.
        tar = tarfile.open(fileobj=RangeView(source, start, length), mode="r:")  # noqa: SIM115
    except tarfile.ReadError as exc:
        raise ArchiveError(f"{label} is not a tar archive ({exc}); {FIX_HINT}.") from None
    try:
        while (info := tar.next()) is not None:
            name = info.name[2:] if info.name.startswith("./") else info.name
            if info.issparse():
                # Before the truncation check: a sparse member's size is its expanded size, not what is stored,
                # so it looked cut short. Refused with its own reason; tarfile skips its stored data.
                if name not in ("", ".", "./"):
                    refused.append((name, _SPARSE))
                continue
            if info.isreg() and info.offset_data + info.size > length:
                refused.append((name, f"truncated: {info.size} bytes of data, the file ends before them"))
                if tolerate_cut_last:
                    return members, refused
                raise ArchiveError(
                    f"{label} is truncated: its last member {name} is cut short "
                    f"({info.offset_data + info.size - length} bytes missing); {FIX_HINT}."
                )
            if not flat and info.isdir():
                continue
            problem = member_problem(info, name, names, flat=flat)
            if problem is None:
                members.append(TarMember(name, start + info.offset_data, info.size, start + info.offset))
            elif name not in ("", ".", "./"):  # a '.' root entry is harmless noise, not worth reporting
                refused.append((name, problem))
        _check_end_marker(source, start, length, tar.offset, label)
    except tarfile.TarError as exc:
        raise ArchiveError(f"{label} is damaged ({exc}); {FIX_HINT}.") from None
    finally:
        tar.close()
    return members, refused


def _check_end_marker(source: ByteSource, start: int, length: int, offset: int, label: str) -> None:
    """tarfile stops quietly at a cut or garbled header; a complete tar has a zero block where it stopped."""
    if offset >= length:
        raise ArchiveError(
            f"{label} is truncated: it ends without the tar end-of-archive marker; {FIX_HINT}."
        )
    block = source.read_at(start + offset, min(_BLOCK, length - offset))
    if len(block) < _BLOCK or block.count(0) != _BLOCK:
        raise ArchiveError(
            f"{label} is truncated or damaged at byte {offset}: expected another member or the "
            f"end-of-archive marker; {FIX_HINT}."
        )


def index_class_tar(
    path: ByteSource | str | os.PathLike[str], class_tar: ClassTar
) -> tuple[tuple[TarMember, ...], list[tuple[str, str]]]:
    """Index one class tar of the train archive by reading only its headers.

    Module-level and picklable so the build can index several classes in a process pool (pass the archive
    path; each worker opens its own file). Returns the images (absolute offsets in the outer archive) and the
    refused inner members with reasons. A cut last image is refused, not fatal; a class tar that is not a tar
    or is garbled raises ArchiveError naming it.
    """
    source = as_byte_source(path)
    label = f"The class tar {class_tar.name} inside {describe_source(source)}"
    scan = getattr(
        source, "scan", None
    )  # a remote source streams the headers in one request, not one per member
    if scan is not None:
        scan(class_tar.offset, class_tar.offset + class_tar.size)
    try:
        members, refused = scan_tar(source, class_tar.offset, class_tar.size, label, tolerate_cut_last=True)
    finally:
        if scan is not None:
            scan(0, 0)
        if source is not path and isinstance(source, FileByteSource):
            source.close()
    return tuple(members), refused
