"""Archives in an object store (``s3://bucket/prefix/...``, ``gs://...``) read through fsspec (s3fs, gcsfs).

Optional extra ``[cloud]``. Credentials come from the usual environment and config files (``AWS_*``,
``~/.aws``; ``AWS_ENDPOINT_URL`` for an S3-compatible store; for gs://, ``GOOGLE_APPLICATION_CREDENTIALS`` or
gcloud's default credentials, and ``STORAGE_EMULATOR_HOST`` for an emulator, read anonymously through gcsfs's
JSON-API client: an emulator serves no storage-control gRPC API); they are never printed nor recorded. Like the HTTP
source, the object's ETag is pinned in the locator (``s3://b/k#etag=...``) at planning; a worker checks it when it
opens the object, so an archive replaced between planning and a unit fails that unit instead of mixing
versions. Reads are ranged GETs; inside a scan window (a class tar's header scan) they are served from blocks of
``SCAN_BLOCK`` bytes, so indexing a class tar costs a few requests, not one per member. Those blocks are kept in
the spool (io/spool.py, as for HTTP), and the build's reads of the same bytes are served from it once the worker
has checked the ETag: a subset's class tars are transferred once.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote, unquote

from ..errors import ArchiveError, InputError, UsageError
from .spool import Spool

SCAN_BLOCK = 64 << 20
MIN_READ = 513  # tarfile's 1-byte probe and the next 512-byte header in one request
SCHEMES = ("s3", "gs")
_CLIENTS = {"s3": "s3fs", "gs": "gcsfs"}


def filesystem(protocol: str, what: str = "--source") -> Any:
    client = _CLIENTS.get(protocol, protocol)
    try:
        import fsspec
    except ImportError:
        raise UsageError(
            f"{what} {protocol}:// needs fsspec and {client}: pip install 'imagenet-prep[cloud]'."
        ) from None
    try:
        options: dict[str, Any] = {}
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if protocol == "s3" and endpoint:
            options["client_kwargs"] = {"endpoint_url": endpoint}
        if protocol == "s3":
            _require_aws_credentials(what)
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        if protocol == "gs" and emulator:
            from gcsfs.core import GCSFileSystem  # the JSON-API client (no storage-control gRPC lookups)

            return GCSFileSystem(token="anon", endpoint_url=emulator)
        return fsspec.filesystem(protocol, **options)
    except ImportError:
        raise UsageError(
            f"{what} {protocol}:// needs {client}: pip install 'imagenet-prep[cloud]'."
        ) from None


_CREDENTIALS_FOUND: list[bool] = []  # botocore's credential chain, looked up once a process


def _require_aws_credentials(what: str) -> None:
    """One line naming what to set when botocore finds no credentials at all (instead of its NoCredentialsError
    traceback at the first request). The chain is botocore's own: variables, ~/.aws files, SSO, instance
    metadata."""
    if not _CREDENTIALS_FOUND:
        import botocore.session  # type: ignore[import-untyped]

        try:
            found = botocore.session.get_session().get_credentials() is not None
        except Exception:  # noqa: BLE001 - a broken profile or config file is also "no usable credentials"
            found = False
        _CREDENTIALS_FOUND.append(found)
    if not _CREDENTIALS_FOUND[0]:
        raise InputError(
            f"{what} s3://: no AWS credentials found. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or "
            "AWS_PROFILE with ~/.aws/credentials), and AWS_ENDPOINT_URL for an S3-compatible store."
        )


def split_pin(locator: str) -> tuple[str, str | None]:
    url, _, fragment = locator.partition("#")
    return url, (unquote(fragment[5:]) if fragment.startswith("etag=") else None)


class ObjectByteSource:
    """An object read by ranged GETs through fsspec. Pickles as its locator."""

    process_bytes_read = 0

    def __init__(self, locator: str) -> None:
        self.url, self._pin = split_pin(locator)
        self.protocol = self.url.split("://", 1)[0].lower()
        self.name = self.url.rstrip("/").rsplit("/", 1)[-1]
        self._fs: Any = None
        self._size: int | None = None
        self._window: tuple[int, int] | None = None
        self._block: tuple[int, bytes] | None = None
        self._spool: Spool | None = None
        self.bytes_read = 0

    @property
    def fs(self) -> Any:
        if self._fs is None:
            self._fs = filesystem(self.protocol)
        return self._fs

    def _info(self) -> None:
        try:
            info = self.fs.info(self.url)
        except FileNotFoundError:
            raise ArchiveError(f"{self.url} does not exist in the object store.") from None
        except (OSError, ValueError) as exc:
            raise ArchiveError(f"Cannot read {self.url}: {exc}.") from None
        etag = info.get("ETag") or info.get("etag")
        if self._pin is None:
            self._pin = etag
        elif etag is not None and etag != self._pin:
            raise ArchiveError(
                f"{self.url}: the archive changed in the object store during the build (ETag {self._pin} became "
                f"{etag}); nothing of the new version was used. Run the same command again to build from it."
            )
        self._size = int(info["size"])

    @property
    def size(self) -> int:
        if self._size is None:
            self._info()
        assert self._size is not None
        return self._size

    @property
    def locator(self) -> str:
        self.size  # noqa: B018 - pins the ETag
        return self.url if self._pin is None else f"{self.url}#etag={quote(self._pin, safe='')}"

    @property
    def validator(self) -> dict[str, str]:
        return {"size": str(self.size), **({"etag": self._pin} if self._pin else {})}

    def scan(self, start: int, end: int) -> None:
        self._window = (start, end) if end > start else None
        self._block = None

    def _get(self, start: int, end: int) -> bytes:
        try:
            data: bytes = self.fs.cat_file(self.url, start=start, end=end)
        except (OSError, ValueError) as exc:
            raise ArchiveError(f"Cannot read {self.url} at {start}: {exc}.") from None
        self.bytes_read += len(data)
        ObjectByteSource.process_bytes_read += len(data)
        return data

    def _spooled(self) -> Spool | None:
        if self._spool is None and self._pin is not None:
            self._spool = Spool(self.url, ("etag", self._pin))
        return self._spool

    def read_at(self, offset: int, size: int) -> bytes:
        end = min(offset + size, self.size)  # the first call checks the pinned ETag (self._info)
        if size <= 0 or offset >= end:
            return b""
        spool = self._spooled()
        if spool is not None and (spooled := spool.read(offset, end)) is not None:
            return spooled
        if self._block is not None:
            first, data = self._block
            if first <= offset and end <= first + len(data):
                return data[offset - first : end - first]
        window = self._window
        scanning = window is not None and window[0] <= offset < window[1]
        if window is not None and scanning:
            stop = max(end, min(window[1], offset + SCAN_BLOCK))
        elif end - offset < MIN_READ:
            stop = min(self.size, offset + MIN_READ)
        else:
            return self._get(offset, end)
        data = self._get(offset, stop)
        self._block = (offset, data)
        writer = spool.writer(offset) if spool is not None and scanning else None
        if writer is not None:  # a scan block: the build will read these images again
            writer.write(offset, data)
            writer.finish()
        return data[: end - offset]

    def close(self) -> None:
        self._block = None
        self._window = None

    def __getstate__(self) -> dict[str, object]:
        return {"locator": self.locator}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["locator"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"ObjectByteSource({self.url!r})"

    def __str__(self) -> str:
        return self.url


def object_exists(url: str) -> bool:
    try:
        return bool(filesystem(url.split("://", 1)[0].lower()).exists(url))
    except (OSError, ValueError) as exc:
        raise ArchiveError(f"Cannot reach {url}: {exc}.") from None


#: the URL schemes ``--out`` writes to (shard outputs staged and uploaded: build/remote.py)
OUT_SCHEMES = ("s3", "gs")


def out_url(value: str) -> str:
    """``--out`` given as a URL: an object-store prefix we can write (``s3://bucket/prefix``), else a usage error."""
    scheme, _, rest = value.partition("://")
    if scheme.lower() not in OUT_SCHEMES:
        raise UsageError(
            f"--out {value}: builds write to a local folder or to s3://bucket/prefix or gs://bucket/prefix "
            f"(shard outputs), not to {scheme}://. Give a folder, or build locally and copy the result."
        )
    bucket = rest.strip("/").split("/", 1)[0]
    if not bucket:
        raise UsageError(f"--out {value}: name a bucket (s3://bucket/prefix).")
    return f"{scheme.lower()}://{rest.strip('/')}"
