"""The exceptions the chunkers library raises.

Every one subclasses a builtin, so callers can catch what they already know:

- ``ChunkingError(ValueError)``: base of everything below.
- ``InvalidParameterError(ChunkingError)``: a parameter is unknown or its value is
  out of range; the message names the parameter and quotes the value.
- ``UnknownChunkerError(ChunkingError, LookupError)``: no chunker by that name;
  the message lists the available names.
- ``UnknownTokenizerError(ChunkingError, LookupError)``: no tokenizer by that name.
- ``MissingDependencyError(ImportError)``: an optional package is not installed;
  the message names the package to install.
- ``UnsupportedVersionError(MissingDependencyError)``: an installed package's
  version was never tested with the adapter that reads its internals.

Non-string text raises plain ``TypeError``.
"""

from __future__ import annotations

# One class for every package (runtime owns the optional model stack); its message
# names the noteloom extra to install.
from runtime.errors import MissingDependencyError


class ChunkingError(ValueError):
    """Base class of the chunkers library's value errors."""


class InvalidParameterError(ChunkingError):
    """A parameter is unknown, or its value is invalid."""


class UnknownChunkerError(ChunkingError, LookupError):
    """No chunker is registered under the requested name."""


class UnknownTokenizerError(ChunkingError, LookupError):
    """The tokenizer specification matches no known tokenizer."""


class UnsupportedVersionError(MissingDependencyError):
    """An installed package is a version the adapter for it was not tested with."""

    def __init__(self, package: str, found: str, tested: tuple[str, ...]) -> None:
        ImportError.__init__(
            self, f"chunkers was tested with {package} {' or '.join(tested)}.x, found {found}: "
            f"pip install '{package}=={tested[-1]}.*'"
        )
        self.package = package
