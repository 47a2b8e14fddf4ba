"""Static sites: an index.html and nothing that needs building or running."""

from __future__ import annotations

from .detect_common import Findings, file_evidence
from .repo_files import RepoFiles

_SITE_DIRS = ("", "public/", "site/", "www/", "docs/", "static/")


def detect_static(repo: RepoFiles) -> Findings | None:
    index = repo.first(*(f"{d}index.html" for d in _SITE_DIRS))
    if index is None:
        return None
    found = Findings(language="static", framework="static", server="static")
    site = index.rpartition("/")[0]
    found.entry_point = index
    found.app_target = site or "."
    found.add("language", file_evidence(index))
    found.add("framework", file_evidence(index))
    found.add("entry_point", file_evidence(index))
    return found
