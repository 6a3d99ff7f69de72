"""The exceptions the runtime package raises (each subclasses a builtin):

- ``MissingDependencyError(ImportError)``: an optional package is not installed;
  the message names the package to install.
- ``InvalidSettingError(ValueError)``: a thread count, device, model name or
  folder that cannot be used; the message quotes the value.
"""

from __future__ import annotations


class MissingDependencyError(ImportError):
    """An optional dependency needed for this feature is not installed."""

    def __init__(self, package: str, feature: str, extra: str | None = None) -> None:
        # ``extra``: the noteloom extra that brings the package (see pyproject.toml)
        hint = f"pip install 'noteloom[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"{feature} needs the package {package!r}: {hint}")
        self.package = package
        self.extra = extra


class InvalidSettingError(ValueError):
    """A runtime setting (threads, device, model, folder) has a value that cannot be used."""
