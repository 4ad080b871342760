"""``fcnseg download``: fetch a public dataset into the layout fcnseg reads."""

from __future__ import annotations

import argparse
import re
from dataclasses import replace
from pathlib import Path

from fcnseg.data.download import SOURCES, fetch
from fcnseg.errors import FcnsegError
from fcnseg.files import check_writable_dir


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "download",
        help="download a public dataset (dataset1) into the layout fcnseg reads",
        description="Download a dataset's zip with a progress bar (an interrupted download "
        "resumes when the command is run again), check it, and extract it into DIR/NAME, "
        "ready for --data. dataset1's zip has no published sha256: the extracted files are "
        "checked against the copy the README's results were measured on. Offline, it says "
        "where to put the zip by hand; a zip found there is used as it is.",
    )
    p.add_argument("name", choices=sorted(SOURCES), help="the dataset")
    p.add_argument(
        "--to", default=".", metavar="DIR", help="folder to put it in (default: the current one)"
    )
    p.add_argument("--url", help="download from this address instead (a mirror)")
    p.add_argument(
        "--sha256", metavar="HEX", help="expected sha256 of the zip (checked before extracting)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    source = SOURCES[args.name]
    if args.sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", args.sha256):
        raise FcnsegError(f"--sha256 must be 64 hex digits, got {args.sha256!r}")
    if args.url is not None and not args.url.startswith(("http://", "https://")):
        raise FcnsegError(f"--url must be an http:// or https:// address, got {args.url!r}")
    source = replace(source, url=args.url or source.url, sha256=args.sha256 or source.sha256)
    to = check_writable_dir(Path(args.to), "--to folder")
    dest = fetch(source, to)
    print(f"{args.name}: {dest} (try: fcnseg verify-data --data {dest})")
    return 0
