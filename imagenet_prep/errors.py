"""Domain errors. Each carries the process exit code the CLI uses and a message that says what to do."""

from __future__ import annotations


class ImagenetPrepError(Exception):
    """Base class. ``exit_code`` (README, "Exit codes"): 1 = the work ran but failed, 2 = usage or input error."""

    exit_code = 2


class UsageError(ImagenetPrepError):
    """Bad options or values given by the user."""


class InputError(ImagenetPrepError):
    """An input file or folder is missing, unreadable or not what it should be."""


class UnknownClassError(UsageError):
    """A wnid, class name or subset name that is not known; the message lists close matches."""


class WordNetError(ImagenetPrepError):
    """WordNet 3.0 is missing, the wrong version, or a query cannot be answered."""


class AmbiguousSynsetError(WordNetError):
    """A name that matches several synsets; the message lists them."""


class ArchiveError(InputError):
    """An archive is missing, truncated, not a tar, or holds a member that is refused."""


class MemberError(ArchiveError):
    """One member cannot be read (not a regular file, over the member-size cap, a CRC-32 mismatch, a damaged
    deflate stream): a reader yields it in place of the bytes; the worker records a skip and the unit goes on."""


class DevkitError(InputError):
    """The devkit is missing a file or holds something that is not the ILSVRC2012 devkit format."""


class DownloadError(ImagenetPrepError):
    """A download failed after its retries."""

    exit_code = 1


class InsufficientSpaceError(DownloadError):
    """The destination has less free space than the download needs."""


class ChecksumError(DownloadError):
    """Downloaded or present bytes do not match the expected size or MD5."""


class BuildError(ImagenetPrepError):
    """A build unit failed (not a single bad image: those are recorded, not raised)."""

    exit_code = 1


class OutputLockedError(UsageError):
    """Another build holds the output folder's lock."""


class BuildInterrupted(BuildError):
    """Ctrl-C or SIGTERM: finished units are kept, the next run resumes."""

    exit_code = 130
