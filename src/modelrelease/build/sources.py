"""The Debian mirror a serving base is built from: this machine's own apt sources.

Only the entries for the machine's Debian release are kept (``bookworm``,
``bookworm-updates``, ``bookworm-security``, ...), as one-line ``deb URI SUITE COMPONENTS``
sources for mmdebstrap; third-party repositories (other suites) are left out. Both the
one-line format (``*.list``) and deb822 (``*.sources``) are read.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from modelrelease.errors import BuildError

APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))


def _one_line(text: str) -> list[tuple[str, str, list[str]]]:
    found = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        parts = line.split()[1:]
        if parts and parts[0].startswith("["):  # options such as [signed-by=...]
            while parts and not parts[0].endswith("]"):
                parts.pop(0)
            parts = parts[1:]
        if len(parts) >= 3:
            found.append((parts[0], parts[1], parts[2:]))
    return found


def _deb822(text: str) -> list[tuple[str, str, list[str]]]:
    found = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for raw in stanza.splitlines():
            if raw.startswith("#") or not raw.strip():
                continue
            if raw[0].isspace() and key:
                fields[key] += " " + raw.strip()
                continue
            key, _, value = raw.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                found.append((uri, suite, fields.get("components", "main").split()))
    return found


def parse_sources(files: Iterable[tuple[str, str]], codename: str) -> list[str]:
    """One-line ``deb`` sources for ``codename`` from ``(file name, text)`` pairs.

    A suite is kept when it is ``codename`` or starts with ``codename-`` (updates,
    security); backports are left out. Duplicates are dropped, the order is kept.
    """
    lines: list[str] = []
    for name, text in files:
        entries = _deb822(text) if name.endswith(".sources") else _one_line(text)
        for uri, suite, components in entries:
            if suite != codename and not (suite.startswith(codename + "-")
                                          and not suite.endswith("-backports")):
                continue
            line = f"deb {uri} {suite} {' '.join(components)}"
            if line not in lines:
                lines.append(line)
    return lines


def host_codename(os_release: Path = Path("/etc/os-release")) -> str:
    """This machine's Debian codename (``VERSION_CODENAME``).

    Raises:
        BuildError: there is no ``/etc/os-release`` or it names no codename.
    """
    try:
        text = os_release.read_text()
    except OSError as exc:
        raise BuildError(f"read {os_release}: {exc.strerror}; the serving base is built from "
                         "this machine's Debian release") from exc
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME" and value.strip('"'):
            return value.strip('"')
    raise BuildError(f"read {os_release}: no VERSION_CODENAME; build the serving base on "
                     "Debian (mmdebstrap uses this machine's release and mirror)")


def host_sources(codename: str, paths: Iterable[Path] = APT_SOURCES) -> list[str]:
    """This machine's apt sources for ``codename`` (see ``parse_sources``).

    Raises:
        BuildError: no entry for ``codename`` is configured.
    """
    files: list[tuple[str, str]] = []
    for path in paths:
        candidates = sorted(path.glob("*.list")) + sorted(path.glob("*.sources")) \
            if path.is_dir() else [path]
        for candidate in candidates:
            if candidate.is_file():
                files.append((candidate.name, candidate.read_text()))
    lines = parse_sources(files, codename)
    if not lines:
        where = ", ".join(str(p) for p in paths)
        raise BuildError(f"find Debian mirror for {codename}: no `deb` entry for {codename} "
                         f"in {where}; add the Debian mirror this machine should use")
    return lines
