"""The service's version: the one in pyproject.toml, as the installed distribution reports it.

pyproject.toml is the only place a version is written; a release tag `vX.Y.Z` must name
it (the pipeline's `release-version` job), and the image built from that tag carries it.
Never read a version from anywhere else (a constant here would drift from the tag).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "figachechnaya"


def service_version() -> str:
    """The installed distribution's version; `0+unknown` when run from an uninstalled tree."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "0+unknown"
