"""Dumps of GitHub API objects: a local JSONL (and .gz) file, and S3 on a local server."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest

from pipelines.core.errors import UserError
from pipelines.prs.dump import read_pr_dump
from tests.prs.pr_fixtures import file_json, pr_json


def dump_lines() -> list[dict]:
    return [{"pull_request": pr_json(11), "files": [file_json("x.py")]},
            {**pr_json(12, merged=False), "files": []},
            {**pr_json(13, login="dependabot[bot]"), "files": [file_json("y.py", additions=2, deletions=0)]}]


def check_dump(prs, skipped) -> None:
    assert [(pr.number, pr.repo, pr.source, pr.change_unit) for pr in prs] == [(11, "o/r", "dump", "pr"),
                                                                               (13, "o/r", "dump", "pr")]
    assert prs[1].is_bot and not prs[0].is_bot and prs[1].additions == 2
    assert skipped == {"closed without merging": 1}


def test_dump_from_a_local_file(tmp_path):
    path = tmp_path / "dump.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in dump_lines()))
    skipped: Counter = Counter()
    check_dump(list(read_pr_dump(str(path), skipped=skipped)), skipped)
    packed = tmp_path / "dump.jsonl.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    assert [pr.number for pr in read_pr_dump(str(packed))] == [11, 13]
    path.write_text(path.read_text() + '{"number": 14, "merged_at": "2024-01-01T00:00:00Z"}\n')
    with pytest.raises(UserError, match=rf"{path}:4: PullRequest field"):
        list(read_pr_dump(str(path)))


def test_dump_from_s3(tmp_path, monkeypatch):
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}"}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        s3 = boto3.client("s3", endpoint_url=f"http://{host}:{port}")
        s3.create_bucket(Bucket="dumps")
        s3.put_object(Bucket="dumps", Key="prs/o-r.jsonl", Body="".join(json.dumps(x) + "\n" for x in dump_lines()))
        skipped: Counter = Counter()
        check_dump(list(read_pr_dump("s3://dumps/prs/o-r.jsonl", skipped=skipped)), skipped)
        with pytest.raises(UserError, match="NoSuchKey"):
            list(read_pr_dump("s3://dumps/missing.jsonl"))
    finally:
        server.stop()
