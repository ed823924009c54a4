"""Pull requests from a dump: JSON lines of GitHub API objects, from a local path (``.gz`` too) or S3."""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any, Iterator

from pydantic import ValidationError

from pipelines.core.errors import UserError, first_error
from pipelines.prs.github_objects import pr_from_api
from pipelines.prs.records import PullRequest, count_skip, in_window


def _s3_client() -> Any:
    import boto3

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    return boto3.client("s3", endpoint_url=endpoint)


def _dump_lines(uri: str) -> Iterator[tuple[int, bytes]]:
    gz = uri.endswith(".gz")
    if uri.startswith("s3://"):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, _, key = uri[5:].partition("/")
        if not bucket or not key:
            raise UserError(f"{uri}: an S3 URI is s3://bucket/key")
        try:
            body = _s3_client().get_object(Bucket=bucket, Key=key)["Body"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise UserError(f"{uri}: cannot read ({code})") from None
        except BotoCoreError as exc:
            raise UserError(f"{uri}: cannot read ({type(exc).__name__}: {str(exc)[:200]})") from None
        stream: Any = gzip.GzipFile(fileobj=body) if gz else body
        lines = stream if gz else body.iter_lines(keepends=True)
        with body:
            yield from enumerate(lines, 1)
        return
    path = Path(uri[7:] if uri.startswith("file://") else uri).expanduser()
    try:
        fh = gzip.open(path, "rb") if gz else path.open("rb")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    with fh:
        yield from enumerate(fh, 1)


def read_pr_dump(uri: str, since: date | None = None, until: date | None = None, limit: int | None = None,
                 skipped: Counter | None = None) -> Iterator[PullRequest]:
    """PRs from JSON lines of GitHub API objects, each ``{"pull_request": {...}, "files": [...]}`` or a
    pull-request object with a ``files`` key; from a path (``.gz`` too) or ``s3://bucket/key``.

    Unmerged PRs and PRs merged outside the window are skipped; a malformed line raises UserError
    naming ``uri:line``.
    """
    kept = 0
    for lineno, raw in _dump_lines(uri):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise UserError(f"{uri}:{lineno}: not valid JSON ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise UserError(f"{uri}:{lineno}: expected a JSON object")
        pr = data.get("pull_request") if isinstance(data.get("pull_request"), dict) else data
        files = data.get("files", pr.get("files"))
        merged = pr.get("merged_at")
        if not merged:
            count_skip(skipped, "closed without merging")
            continue
        try:
            record = pr_from_api(pr, files, source="dump")
        except ValidationError as exc:
            where, msg = first_error(exc)
            raise UserError(f"{uri}:{lineno}: PullRequest field {where}: {msg}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{uri}:{lineno}: not a GitHub pull-request object ({type(exc).__name__}: {exc})") from None
        if not in_window(record.merged_at, since, until):
            count_skip(skipped, "merged outside the date window")
            continue
        yield record
        kept += 1
        if limit and kept >= limit:
            return
