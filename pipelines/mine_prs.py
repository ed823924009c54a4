"""Stage ``mine_prs``: collect merged pull requests as normalised records.

``python -m pipelines.mine_prs`` reads ``params.yaml: mine_prs`` and writes ``data/prs/prs.jsonl``
(one :class:`pipelines.prs.records.PullRequest` per line) and ``data/prs/report.json`` (counts per source
and repository, skipped changes with reasons, and for a git source its records per pattern: merge commit,
titled merge, squash, single commit, each also on a branch merged in), and logs an MLflow run.
Sources: ``github`` (``owner/name`` over the REST API, token from ``$GITHUB_TOKEN``), ``git`` (a local
clone or a git bundle file, HEAD or the history of a pinned commit ``rev``; the default mines the example
repository this project ships, ``data/example-repo.bundle``) and ``dump`` (JSON lines of API objects, a
path or ``s3://``).

``python -m pipelines.mine_prs --repo PATH_OR_OWNER/NAME --out FILE [--since DATE] [--until DATE]
[--limit N]`` mines one repository without params.yaml or MLflow: an existing directory with git or a git
bundle file, anything shaped ``owner/name`` over the GitHub API.

Outputs are written only when every source succeeded, so a failure (a rejected token, say) leaves
the previous outputs as they were.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Callable, Iterator

from pydantic import ValidationError

from pipelines.core.console import main_guard, progress
from pipelines.core.errors import UserError
from pipelines.core.io import atomic_write_json
from pipelines.core.params import load_params
from pipelines.prs.config import MinePRsParams, PRSource
from pipelines.core.paths import repo_root
from pipelines.prs.dump import read_pr_dump
from pipelines.prs.git import RevisionError, mine_git
from pipelines.prs.github import GitHubClient, default_cache_dir, mine_github
from pipelines.prs.github_defaults import DEFAULT_API, REPO_NAME, TOKEN_ENV
from pipelines.prs.records import PullRequest, write_prs

log = logging.getLogger("pipelines.mine_prs")
DEFAULT_OUT = "data/prs/prs.jsonl"


def mine(params: MinePRsParams, out: Path, root: Path, *, report_path: Path | None = None,
         sleep: Callable[[float], None] = time.sleep, tracker=None) -> dict:
    """Mine every source of ``params``; write ``out`` (JSONL) and ``report_path`` (if given); return the report.

    Nothing is written unless every source succeeded. A PR met twice (same ``repo#number``) is kept once.
    Records keep the sources' order; the report holds counts only, so both are a function of the sources.
    Run-dependent figures (seconds, GitHub requests and cache hits) go to ``tracker.record_timings``.
    """
    started = time.monotonic()
    records: list[PullRequest] = []
    seen: set[str] = set()
    entries: list[dict] = []
    client: GitHubClient | None = None
    try:
        for index, source in enumerate(params.sources):
            if source.kind == "github" and client is None:
                client = _github_client(params, root, sleep)
            entries.append(_mine_source(index, source, root, client, seen, records))
    finally:
        requests = dict(sorted(client.stats.items())) if client is not None else {}
        if client is not None:
            client.close()
    report = _report(records, entries)
    write_prs(out, records)
    if report_path is not None:
        atomic_write_json(report_path, report)
    if tracker is not None:
        tracker.record_timings({"seconds": round(time.monotonic() - started, 3), "github_requests": requests},
                               root=root)
    return report


def _mine_source(index: int, source: PRSource, root: Path, client: GitHubClient | None, seen: set[str],
                 records: list[PullRequest]) -> dict:
    """Append the source's records not ``seen`` before to ``records``; return the source's report entry."""
    skipped: Counter = Counter()
    units: Counter = Counter()
    patterns: Counter = Counter()
    try:
        for pr in progress(_records(source, root, client, skipped, patterns),
                           desc=f"mine_prs {source.kind} {source.label}", unit="PR"):
            if pr.key in seen:
                skipped["duplicate of an earlier record"] += 1
                continue
            seen.add(pr.key)
            records.append(pr)
            units[pr.change_unit] += 1
    except RevisionError as exc:
        raise UserError(f"params.yaml: mine_prs.sources[{index}].rev: {exc}") from None
    entry = {"kind": source.kind, "repo": source.repo if source.kind != "dump" else None, "uri": source.uri,
             "rev": source.rev, "prs": sum(units.values()), "change_units": _sorted(units), "skipped": _sorted(skipped)}
    if source.kind == "git":  # how the records were found (before de-duplication against earlier sources)
        entry["patterns"] = _sorted(patterns)
    return entry


def _report(records: list[PullRequest], entries: list[dict]) -> dict:
    """Totals over the sources: records per repository and skips per reason."""
    skipped: Counter = Counter()
    for entry in entries:
        skipped.update(entry["skipped"])
    return {"total": len(records), "repos": _sorted(Counter(pr.repo for pr in records)), "sources": entries,
            "skipped": _sorted(skipped)}


def _sorted(counts: Counter) -> dict[str, int]:
    """A count per key, keys sorted: the same counts always serialise the same way."""
    return dict(sorted(counts.items()))


def _records(source: PRSource, root: Path, client: GitHubClient | None, skipped: Counter,
             patterns: Counter) -> Iterator[PullRequest]:
    """The source's records; ``skipped`` counts what it left out, ``patterns`` (git only) how it found each record."""
    limit = source.limit or None
    if source.kind == "git":
        path = Path(source.repo).expanduser()
        return mine_git(path if path.is_absolute() else root / path, source.since, source.until, limit,
                        rev=source.rev, repo_name=source.repo, skipped=skipped, patterns=patterns)
    if source.kind == "github":
        assert client is not None
        return mine_github(client, source.repo, source.since, source.until, limit, skipped)
    return read_pr_dump(str(source.uri), source.since, source.until, limit, skipped)


def _github_client(params: MinePRsParams, root: Path, sleep: Callable[[float], None]) -> GitHubClient:
    cache = Path(params.cache_dir).expanduser() if params.cache_dir else default_cache_dir()
    client = GitHubClient.from_env(base_url=params.github_api, cache_dir=cache if cache.is_absolute() else root / cache,
                                   sleep=sleep)
    if not client.authenticated:
        log.warning("$%s is not set: GitHub allows 60 anonymous requests an hour", TOKEN_ENV)
    return client


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _one_repo(args: argparse.Namespace) -> MinePRsParams:
    """The params for ``--repo``: an existing directory is a git clone and an existing file a git bundle,
    ``owner/name`` a GitHub repo."""
    if Path(args.repo).expanduser().exists():
        kind = "git"
    elif REPO_NAME.match(args.repo):
        kind = "github"
    else:
        raise UserError(f"--repo {args.repo}: neither an existing directory or git bundle nor a GitHub owner/name")
    source = {"kind": kind, "repo": args.repo, "since": args.since, "until": args.until}
    if args.limit is not None:
        source["limit"] = args.limit
    try:
        return MinePRsParams(sources=[PRSource(**source)], github_api=args.github_api or DEFAULT_API)
    except ValidationError as exc:
        raise UserError(f"--repo {args.repo}: {exc.errors()[0]['msg']}") from None


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.mine_prs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", help="mine only this: a local git clone or bundle, or owner/name on GitHub")
    parser.add_argument("--out", help=f"output JSONL (default: {DEFAULT_OUT}; required with --repo)")
    parser.add_argument("--since", type=_day, help="with --repo: PRs merged on or after this day")
    parser.add_argument("--until", type=_day, help="with --repo: PRs merged on or before this day")
    parser.add_argument("--limit", type=int, help="with --repo: at most N PRs (0 = no cap; default 100)")
    parser.add_argument("--github-api", help=f"with --repo: GitHub REST base URL (default {DEFAULT_API})")
    parser.add_argument("--report",
                        help="also write the report here (default without --repo: report.json beside --out)")
    parser.add_argument("--no-track", action="store_true", help="do not log an MLflow run")
    args = parser.parse_args()
    if args.repo:
        if not args.out:
            parser.error("--out is required with --repo")
        params = _one_repo(args)
        report = mine(params, Path(args.out), Path.cwd(), report_path=Path(args.report) if args.report else None)
    else:
        if any(v is not None for v in (args.since, args.until, args.limit, args.github_api)):
            parser.error("--since, --until, --limit and --github-api go with --repo; otherwise set them in params.yaml")
        root = repo_root()
        everything = load_params()
        params = getattr(everything, "mine_prs", None)
        if params is None:
            raise UserError("pipelines/core/params.py has no mine_prs group yet; use --repo PATH_OR_OWNER/NAME --out FILE")
        out = Path(args.out or DEFAULT_OUT)
        out = out if out.is_absolute() else root / out
        report_path = Path(args.report) if args.report else out.parent / "report.json"
        if args.no_track:
            report = mine(params, out, root, report_path=report_path)
        else:
            from pipelines.core.tracking import stage_run

            with stage_run("mine_prs", everything.group("mine_prs")) as run:
                report = mine(params, out, root, report_path=report_path, tracker=run)
                run.log_metrics({"prs": report["total"], "skipped": sum(report["skipped"].values()),
                                 **{f"prs_{s['kind']}_{i}": s["prs"] for i, s in enumerate(report["sources"])}})
                run.log_dict(report, "report.json")
    units = Counter()
    for source in report["sources"]:
        units.update(source["change_units"])
    log.info("%d pull requests (%s) -> %s; skipped: %s", report["total"],
             ", ".join(f"{k} {v}" for k, v in sorted(units.items())) or "none", args.out or DEFAULT_OUT,
             ", ".join(f"{k} {v}" for k, v in sorted(report["skipped"].items())) or "none")
    return 0


if __name__ == "__main__":
    main_guard(main)
