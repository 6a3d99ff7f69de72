"""The only places where chunkers reads other libraries' private names: one
module per library, each stating the versions it was tested with and refusing
others with ``UnsupportedVersionError`` (a new release may rename what it reads)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ..errors import MissingDependencyError, UnsupportedVersionError


def check_version(package: str, tested: tuple[str, ...], feature: str) -> str:
    """The installed version of ``package``; raises unless its ``major.minor``
    is one of ``tested``."""
    try:
        found = version(package)
    except PackageNotFoundError as exc:
        raise MissingDependencyError(package, feature) from exc
    if ".".join(found.split(".")[:2]) not in tested:
        raise UnsupportedVersionError(package, found, tested)
    return found
