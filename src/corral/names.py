"""Model names and digests: the grammar, its defaults, and where a name lives on disk.

A model name is ``[scheme://][host/][namespace/]model[:tag]``. Missing parts take Ollama's
defaults (``registry.ollama.ai``, ``library``, ``latest``, scheme ``https``), and every part is
then checked against Ollama's rules:

- host: 1..350 characters; ASCII letters, digits, ``_``, ``-``, ``.``, ``:``
- namespace: 1..80 characters; ASCII letters, digits, ``_``, ``-``
- model and tag: 1..80 characters; ASCII letters, digits, ``_``, ``-``, ``.``
- every part starts with an ASCII letter, a digit or ``_``

Because a part can neither start with ``.`` nor contain ``/``, ``\\`` or NUL, a valid name's
manifest path ``manifests/<host>/<namespace>/<model>/<tag>`` always stays inside the store.
Every :class:`ModelName` is validated when it is built, so that guarantee holds for all of them.

Names compare case-insensitively where Ollama uses ``EqualFold``: :meth:`ModelName.key`, and
:func:`find_case_insensitive` / :func:`existing_spelling` for the names already on disk.
Digests are ``sha256:<64 hex>`` (``sha256-<64 hex>`` is accepted too, as in blob routes).
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from corral.errors import BadRequest, InvalidModelName

DEFAULT_HOST: Final = "registry.ollama.ai"
DEFAULT_NAMESPACE: Final = "library"
DEFAULT_TAG: Final = "latest"
DEFAULT_SCHEME: Final = "https"

HOST_MAX_LEN: Final = 350
PART_MAX_LEN: Final = 80

MANIFESTS_DIR: Final = "manifests"

INVALID_DIGEST_MESSAGE: Final = "invalid digest format"

# Stands for a part that a separator promised but that is empty (as in "model:" or "/model").
# Its "!" can never pass validation, so such a name is always rejected.
_MISSING: Final = "!MISSING!"

_FIRST_CHARS: Final = frozenset(string.ascii_letters + string.digits + "_")

_DIGEST_RE: Final = re.compile(r"sha256[:-]([0-9a-fA-F]{64})")


@dataclass(frozen=True, slots=True)
class _PartRule:
    """What one part of a name may look like."""

    label: str
    max_len: int
    rest_chars: frozenset[str]

    def accepts(self, s: str) -> bool:
        if not 1 <= len(s) <= self.max_len or s[0] not in _FIRST_CHARS:
            return False
        return all(c in self.rest_chars for c in s[1:])


_HOST: Final = _PartRule("host", HOST_MAX_LEN, _FIRST_CHARS | frozenset("-.:"))
_NAMESPACE: Final = _PartRule("namespace", PART_MAX_LEN, _FIRST_CHARS | frozenset("-"))
_MODEL: Final = _PartRule("model", PART_MAX_LEN, _FIRST_CHARS | frozenset("-."))
_TAG: Final = _PartRule("tag", PART_MAX_LEN, _FIRST_CHARS | frozenset("-."))
_RULES: Final = (_HOST, _NAMESPACE, _MODEL, _TAG)


def _fold(s: str) -> str:
    """Case-fold a validated (hence ASCII) part, as Go's ``strings.EqualFold`` compares it."""
    return s.lower()


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelName:
    """A fully qualified, validated model name.

    Equality and hashing are exact (case-sensitive) on the four parts; use :meth:`key` to compare
    the way Ollama does. ``scheme`` only says how to reach the registry (``http`` or ``https``)
    and takes no part in equality.
    """

    host: str = DEFAULT_HOST
    namespace: str = DEFAULT_NAMESPACE
    model: str
    tag: str = DEFAULT_TAG
    scheme: str = field(default=DEFAULT_SCHEME, compare=False)

    def __post_init__(self) -> None:
        for rule, part in zip(_RULES, self.parts(), strict=True):
            if not rule.accepts(part):
                raise InvalidModelName()

    def __str__(self) -> str:
        return self.display_long()

    def parts(self) -> tuple[str, str, str, str]:
        """``(host, namespace, model, tag)``."""
        return (self.host, self.namespace, self.model, self.tag)

    def key(self) -> tuple[str, str, str, str]:
        """The parts case-folded: two names with equal keys are the same model to Ollama."""
        return (_fold(self.host), _fold(self.namespace), _fold(self.model), _fold(self.tag))

    def display_long(self) -> str:
        """``host/namespace/model:tag``."""
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    def display_shortest(self) -> str:
        """The name as ``/api/tags`` and ``/api/ps`` show it: default host/namespace left out.

        ``model:tag`` under the default host and namespace, ``namespace/model:tag`` under the
        default host only, else the long form. Defaults are recognised case-insensitively.
        """
        if _fold(self.host) != DEFAULT_HOST:
            return self.display_long()
        if _fold(self.namespace) != DEFAULT_NAMESPACE:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.model}:{self.tag}"

    def manifest_relpath(self) -> tuple[str, str, str, str]:
        """Path components of the manifest below ``<models>/manifests``."""
        return self.parts()

    def manifest_path(self, root: Path) -> Path:
        """``root/manifests/<host>/<namespace>/<model>/<tag>`` (``root`` is ``OLLAMA_MODELS``)."""
        return root.joinpath(MANIFESTS_DIR, *self.manifest_relpath())


def _cut_last(s: str, sep: str) -> tuple[str, str] | None:
    """Split ``s`` at the last ``sep``; an empty side becomes :data:`_MISSING`."""
    i = s.rfind(sep)
    if i < 0:
        return None
    return (s[:i] or _MISSING, s[i + len(sep) :] or _MISSING)


def parse_name(s: str) -> ModelName:
    """Parse ``[scheme://][host/][namespace/]model[:tag]`` and fill in the defaults.

    Raises :class:`~corral.errors.InvalidModelName` unless every part is valid. Nothing is
    trimmed or rewritten: ``@digest`` suffixes, spaces and ``:cloud``-style suffixes are not
    understood here (Ollama's name parser rejects ``@``; route-level rewrites belong to routes).
    """
    scheme = host = namespace = tag = ""
    # A tag's ":" is the last one, and only counts after the last "/" (a host may hold a port).
    if s.rfind(":") > s.rfind("/"):
        cut = _cut_last(s, ":")
        if cut is not None:
            s, tag = cut
    cut = _cut_last(s, "/")
    if cut is None:
        model = s
    else:
        s, model = cut
        cut = _cut_last(s, "/")
        if cut is None:
            namespace = s
        else:
            s, namespace = cut
            scheme, sep, host = s.partition("://")
            if not sep:
                scheme, host = "", s
    return ModelName(
        host=host or DEFAULT_HOST,
        namespace=namespace or DEFAULT_NAMESPACE,
        model=model,
        tag=tag or DEFAULT_TAG,
        scheme=scheme or DEFAULT_SCHEME,
    )


def is_valid_name(s: str) -> bool:
    """Whether :func:`parse_name` accepts ``s``."""
    try:
        parse_name(s)
    except InvalidModelName:
        return False
    return True


def parse_manifest_relpath(parts: Sequence[str]) -> ModelName | None:
    """The name stored at ``manifests/<parts...>``, or ``None`` if that is not a valid name.

    ``parts`` are the path components below the ``manifests`` directory (for instance
    ``path.relative_to(manifests_dir).parts``); anything but four valid parts gives ``None``.
    """
    if isinstance(parts, str) or len(parts) != 4:
        return None
    host, namespace, model, tag = parts
    try:
        return ModelName(host=host, namespace=namespace, model=model, tag=tag)
    except InvalidModelName:
        return None


def _entries(directory: Path, rule: _PartRule, want_file: bool) -> list[str]:
    """Sorted names of the entries of ``directory`` that are valid parts of the given kind.

    Directories are wanted for host, namespace and model, regular files for the tag. Symbolic
    links are followed, as Ollama's ``os.Stat`` does; unreadable entries are skipped.
    """
    found: list[str] = []
    try:
        with os.scandir(directory) as it:
            for entry in it:
                if not rule.accepts(entry.name):
                    continue
                try:
                    wanted = entry.is_file() if want_file else entry.is_dir()
                except OSError:
                    continue
                if wanted:
                    found.append(entry.name)
    except OSError:
        return []
    return sorted(found)


def find_case_insensitive(root: Path, name: ModelName) -> Path | None:
    """The manifest file under ``root/manifests`` whose path matches ``name`` ignoring case.

    At each level the exact spelling is tried first, then the other spellings in sorted order,
    so the exact file wins when several spellings exist. ``None`` if there is no such file.
    """
    wanted = name.manifest_relpath()

    def search(directory: Path, depth: int) -> Path | None:
        if depth == len(wanted):
            return directory
        part = wanted[depth]
        want_file = depth == len(wanted) - 1
        candidates = [
            e for e in _entries(directory, _RULES[depth], want_file) if _fold(e) == _fold(part)
        ]
        candidates.sort(key=lambda e: e != part)
        for entry in candidates:
            found = search(directory / entry, depth + 1)
            if found is not None:
                return found
        return None

    return search(root / MANIFESTS_DIR, 0)


def iter_stored_names(root: Path) -> Iterator[ModelName]:
    """Every valid name with a manifest file under ``root/manifests`` (others are skipped)."""

    def walk(directory: Path, prefix: tuple[str, ...]) -> Iterator[ModelName]:
        depth = len(prefix)
        for entry in _entries(directory, _RULES[depth], depth == len(_RULES) - 1):
            if depth == len(_RULES) - 1:
                found = parse_manifest_relpath((*prefix, entry))
                if found is not None:
                    yield found
            else:
                yield from walk(directory / entry, (*prefix, entry))

    yield from walk(root / MANIFESTS_DIR, ())


def existing_spelling(root: Path, name: ModelName) -> ModelName:
    """``name`` with each part respelled as a stored name spells it, as Ollama does on writes.

    Ollama canonicalises host, namespace, model and tag independently against all stored names
    (``getExistingName``), so creating, pulling or copying to a differently-cased name rewrites
    the existing manifest instead of adding a second one. Where stored names disagree, the exact
    spelling wins, then the first in sorted order (Ollama's pick there is arbitrary).
    """
    spellings: list[set[str]] = [set(), set(), set(), set()]
    wanted = [_fold(p) for p in name.parts()]
    for stored in iter_stored_names(root):
        for i, part in enumerate(stored.parts()):
            if _fold(part) == wanted[i]:
                spellings[i].add(part)
    chosen: list[str] = []
    for part, options in zip(name.parts(), spellings, strict=True):
        if part in options or not options:
            chosen.append(part)
        else:
            chosen.append(min(options))
    host, namespace, model, tag = chosen
    return ModelName(host=host, namespace=namespace, model=model, tag=tag, scheme=name.scheme)


def parse_digest(s: str) -> str:
    """Validate a blob digest and return it as ``sha256:<hex>``.

    Accepts ``sha256:<64 hex>`` and ``sha256-<64 hex>``. Like Ollama, upper-case hex is accepted
    and kept as given (such a blob never exists, since digests are computed in lower case).
    Raises :class:`~corral.errors.BadRequest` ``invalid digest format`` otherwise.
    """
    match = _DIGEST_RE.fullmatch(s)
    if match is None:
        raise BadRequest(INVALID_DIGEST_MESSAGE)
    return f"sha256:{match.group(1)}"


def blob_filename(digest: str) -> str:
    """The file name of a blob in ``<models>/blobs``: ``sha256-<hex>``."""
    return "sha256-" + parse_digest(digest).removeprefix("sha256:")
