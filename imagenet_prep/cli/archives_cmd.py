"""CLI commands `fetch` and `verify` (release archives). The library does the work; this renders it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer

from .options import Json
from .output import Output

DEFAULT_BASE_URL = (
    "https://image-net.org/data/ILSVRC/2012/"  # repeated from catalog: keeps --help import-free
)


def _parse_headers(values: list[str] | None) -> dict[str, str]:
    from ..io.http import parse_headers

    return parse_headers(values or [])


class _Bars:
    """tqdm byte bars, one per file (bytes/s and ETA), shown only on a terminal."""

    def __init__(self, stacked: bool) -> None:
        self._stacked = stacked
        self._bars: list = []
        self._lock = threading.Lock()

    def __call__(self, name: str, total: int | None, initial: int):
        from tqdm import tqdm

        with self._lock:
            bar = tqdm(
                total=total,
                initial=initial,
                desc=name,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                position=len(self._bars) if self._stacked else None,
                leave=True,
                dynamic_ncols=True,
                disable=None,  # None: no bar when stderr is not a terminal (CI logs stay clean)
            )
            self._bars.append(bar)
        return bar.update

    def close(self) -> None:
        for bar in self._bars:
            bar.close()


def fetch_command(
    dest: Annotated[Path, typer.Option("--dest", help="Folder to download into (created if missing).")],
    only: Annotated[
        str | None,
        typer.Option(
            "--only",
            help="Comma-separated archives: train, val, devkit, test, bbox_train, bbox_val, devkit_t3, "
            "train_t3, or file names from --checksums. Default: train,val,devkit.",
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="Where the files are: an http(s) URL, a local folder or file:// URL. "
            f"Default: {DEFAULT_BASE_URL} (needs an image-net.org account).",
        ),
    ] = None,
    checksums: Annotated[
        Path | None,
        typer.Option(
            "--checksums", help="MD5SUMS file that overrides the built-in checksums (mirrors, samples)."
        ),
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Files downloaded at once.")] = 1,
    header: Annotated[
        list[str] | None,
        typer.Option(
            "--header",
            help="Extra request header 'Name: value' (repeatable); sent to the base host only.",
        ),
    ] = None,
    cookie: Annotated[
        list[str] | None,
        typer.Option("--cookie", help="Cookie 'name=value' (repeatable); sent to the base host only."),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds without data before resuming.")
    ] = 60.0,
    retries: Annotated[int, typer.Option("--retries", min=0, help="Retries per request (connect, 5xx).")] = 5,
    min_rate: Annotated[
        int,
        typer.Option(
            "--min-rate",
            min=0,
            help="Minimum transfer rate in bytes/s over 30 s: a slower attempt is aborted and resumed, and "
            "the file fails after 6 such attempts in a row. 0: no minimum.",
        ),
    ] = 1024,
    max_size: Annotated[
        int | None,
        typer.Option(
            "--max-size",
            min=1,
            help="Largest file accepted, in bytes, when no size is known for it and the server announces "
            "none (default: stop before the disk is full).",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Download ILSVRC2012 archives: resumable, MD5-verified, atomic.

    Credentials come from ~/.netrc, IMAGENET_PREP_USER / IMAGENET_PREP_PASSWORD, --header or --cookie and
    are never printed.

    Example: imagenet-prep fetch --dest ./ilsvrc --only val,devkit --base-url /mnt/mirror
    """
    from ..errors import UsageError
    from ..fetch.download import FetchReport, credentials_available, fetch, human_bytes

    headers = _parse_headers(header)
    cookies = "; ".join(c.strip() for c in cookie or [] if c.strip()) or None
    if base_url is None and not credentials_available(DEFAULT_BASE_URL, headers=headers, cookies=cookies):
        raise UsageError(
            f"{DEFAULT_BASE_URL} serves ILSVRC2012 only to signed-in image-net.org accounts and no "
            "credentials were found: add 'machine image-net.org login USER password PASS' to ~/.netrc, "
            "or set IMAGENET_PREP_USER and IMAGENET_PREP_PASSWORD, or pass --header / --cookie; or fetch "
            "from a mirror with --base-url URL-or-FOLDER "
            "(e.g. imagenet-prep fetch --dest ./ilsvrc --base-url /mnt/ILSVRC2012)"
        )
    keys = [k.strip() for k in only.split(",") if k.strip()] if only else None
    bars = _Bars(stacked=jobs > 1)
    try:
        results = fetch(
            dest,
            keys,
            base_url or DEFAULT_BASE_URL,
            checksums=checksums,
            jobs=jobs,
            headers=headers or None,
            cookies=cookies,
            progress=None if as_json else bars,
            timeout=(min(30.0, timeout), timeout),
            retries=retries,
            min_rate=min_rate,
            max_size=max_size,
        )
    finally:
        bars.close()
    report = FetchReport(str(dest), tuple(results))
    Output(as_json).result(
        report,
        [
            f"{r.status:<18} {r.file}  {human_bytes(r.size)}" + (f"  md5 {r.md5}" if r.md5 else "")
            for r in results
            if r.ok
        ],
    )
    failed = [r for r in results if not r.ok]
    for r in failed:
        typer.echo(f"imagenet-prep: error: {r.error}", err=True)
    if failed:
        raise typer.Exit(1)


def verify_command(
    folder: Annotated[Path, typer.Argument(help="Folder holding the archives.")],
    checksums: Annotated[
        Path | None,
        typer.Option(
            "--checksums", help="MD5SUMS file that overrides the built-in checksums (mirrors, samples)."
        ),
    ] = None,
    as_json: Json = False,
    rehash: Annotated[
        bool,
        typer.Option(
            "--rehash",
            help="Ignore the MD5 cache: read every archive again and record the fresh MD5s. The cache "
            "trusts a file whose size and modification time are unchanged; use this after a disk "
            "problem or when bit rot is suspected.",
        ),
    ] = False,
) -> None:
    """Check the size and MD5 of every known archive in FOLDER (MD5s are cached: a re-check is instant).

    The cache is keyed by size and modification time; --rehash re-reads everything (bit rot).
    Exit 0 when all present archives match, 1 when one does not, 2 when none is present.

    Example: imagenet-prep verify ./ilsvrc
    """
    from ..errors import InputError
    from ..fetch.download import human_bytes
    from ..fetch.verify import VerifyReport, missing, verify

    bars = _Bars(stacked=False)
    try:
        results = verify(folder, checksums=checksums, progress=None if as_json else bars, rehash=rehash)
    finally:
        bars.close()
    absent = missing(folder, checksums)
    if not any(r.status in ("ok", "mismatch") for r in results):
        unverified = f" ({', '.join(r.file for r in results)} present but no MD5 is known)" if results else ""
        raise InputError(
            f"no known archive to verify in {folder}{unverified}; expected any of: {', '.join(absent)}; "
            f"download them with `imagenet-prep fetch --dest {folder}`"
        )
    bad = [r for r in results if r.status == "mismatch"]
    lines = []
    for r in results:
        if r.status == "ok":
            note = " (cached)" if r.cached else ""
            lines.append(f"OK          {r.file}  {human_bytes(r.actual_size)}  md5 {r.actual_md5}{note}")
        elif r.status == "unverified":
            lines.append(
                f"UNVERIFIED  {r.file}  {human_bytes(r.actual_size)}  no MD5 known (pass --checksums)"
            )
        elif r.size_ok is False:
            lines.append(f"MISMATCH    {r.file}  size {r.actual_size}, expected {r.expected_size}")
        else:
            lines.append(f"MISMATCH    {r.file}  md5 {r.actual_md5}, expected {r.expected_md5}")
    summary = f"{sum(r.ok for r in results)} ok, {len(bad)} mismatched"
    lines.append(summary + (f"; not present: {', '.join(absent)}" if absent else ""))
    Output(as_json).result(VerifyReport(str(folder), tuple(results), tuple(absent)), lines)
    if bad:
        names = ", ".join(r.file for r in bad)
        hint = ""
        if checksums is None and (folder / "MD5SUMS").is_file():
            hint = (
                f"; {folder / 'MD5SUMS'} exists: for a mirror or sample release, "
                f"pass --checksums {folder / 'MD5SUMS'}"
            )
        typer.echo(
            f"imagenet-prep: error: {len(bad)} archive(s) do not match: {names}; delete them and run "
            f"`imagenet-prep fetch --dest {folder}` again{hint}",
            err=True,
        )
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Register `fetch` and `verify` on the root app."""
    app.command("fetch")(fetch_command)
    app.command("verify")(verify_command)
