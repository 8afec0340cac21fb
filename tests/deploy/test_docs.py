"""The README and docs/ stand alone: every link resolves inside the repository, and the
settings table of docs/api.md names every setting the server reads."""

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from serving.core.settings import Settings

# [text](target) and ![alt](target), and <scheme://...> autolinks.
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_AUTOLINK = re.compile(r"<([a-z][a-z0-9+.-]*:[^>\s]+)>")
_LOCAL_HOSTS = {"localhost", "127.0.0.1"}  # examples that talk to a server you run yourself


def _documents(repo_root: Path) -> list[Path]:
    return [repo_root / "README.md", *sorted((repo_root / "docs").glob("*.md"))]


def _without_code(text: str) -> str:
    """Code blocks and spans hold commands and JSON, not links."""
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def _links(document: Path) -> list[str]:
    text = _without_code(document.read_text())
    return _INLINE_LINK.findall(text) + _AUTOLINK.findall(text)


def _problem(document: Path, target: str, repo_root: Path) -> str | None:
    parts = urlsplit(target)
    if parts.scheme in ("http", "https"):
        if parts.hostname in _LOCAL_HOSTS:
            return None
        return f"{document.name}: {target} points outside the repository"
    if parts.scheme or parts.netloc:
        return f"{document.name}: {target} points outside the repository"
    if not parts.path:  # an anchor in the same page
        return None
    resolved = (document.parent / parts.path).resolve()
    if not resolved.is_relative_to(repo_root):
        return f"{document.name}: {target} leaves the repository"
    if not resolved.exists():
        return f"{document.name}: {target} does not exist"
    return None


def test_every_link_in_the_readme_and_docs_resolves_inside_the_repository(
    repo_root: Path,
) -> None:
    checked = 0
    problems = []
    for document in _documents(repo_root):
        for target in _links(document):
            checked += 1
            if (problem := _problem(document, target, repo_root)) is not None:
                problems.append(problem)

    assert problems == []
    assert checked >= 10  # the parser found the links that are there


@pytest.mark.parametrize(
    ("target", "verdict"),
    [
        ("docs/api.md", None),
        ("../shared/API.md", "leaves the repository"),
        ("docs/nothing.md", "does not exist"),
        ("https://example.com/x", "points outside the repository"),
        ("http://localhost:8000/docs", None),
        ("#settings", None),
    ],
)
def test_the_link_check_tells_good_links_from_bad(
    target: str, verdict: str | None, repo_root: Path
) -> None:
    problem = _problem(repo_root / "README.md", target, repo_root)

    assert (problem is None) if verdict is None else (verdict in str(problem))


def test_docs_api_lists_every_setting_the_server_reads(repo_root: Path) -> None:
    documented = set(re.findall(r"`(SERVING_[A-Z0-9_]+)`", (repo_root / "docs/api.md").read_text()))
    read = {f"SERVING_{name.upper()}" for name in Settings.model_fields}

    assert read - documented == set()
    assert {"SERVING_MAX_INFLIGHT", "SERVING_REQUEST_TIMEOUT_SECONDS"} <= documented
