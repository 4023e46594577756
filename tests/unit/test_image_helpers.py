"""The pure parts of `fusioninfer_dev.localcluster.image`: base image names, the apt mirror, the cache key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusioninfer_dev.localcluster.image import DOCKERFILE, base_key, debian_mirror, dockerfile_base, qualified


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("python:3.11.11-slim-bookworm", "docker.io/library/python:3.11.11-slim-bookworm"),
        ("library/python:3.11", "docker.io/library/python:3.11"),
        ("docker.io/library/python:3.11", "docker.io/library/python:3.11"),
        ("ghcr.io/org/python:3.11", "ghcr.io/org/python:3.11"),
        ("localhost/python:3.11", "localhost/python:3.11"),
        ("registry:5000/python:3.11", "registry:5000/python:3.11"),
    ],
)
def test_qualified_names_are_what_podman_stores(name: str, expected: str) -> None:
    assert qualified(name) == expected


def test_the_stand_in_takes_the_name_the_dockerfile_uses() -> None:
    arg = next(line for line in DOCKERFILE.read_text().splitlines() if line.startswith("ARG PYTHON_IMAGE="))
    assert dockerfile_base() == qualified(arg.split("=", 1)[1])


def test_mirror_from_deb822_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n"
    )
    assert debian_mirror(tmp_path) == "http://mirror.example/debian"


def test_mirror_from_one_line_sources_list(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb http://security.example/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n"
    )
    assert debian_mirror(tmp_path) == "http://mirror.example/debian"


def test_mirror_defaults_to_debians(tmp_path: Path) -> None:
    assert debian_mirror(tmp_path) == "http://deb.debian.org/debian"


def test_cache_key_changes_with_the_mirror_and_the_added_cas(tmp_path: Path) -> None:
    ca = tmp_path / "a.crt"
    ca.write_text("one")
    key = base_key("http://a/debian", [ca])
    assert key == base_key("http://a/debian", [ca])
    assert key != base_key("http://b/debian", [ca])
    ca.write_text("two")
    assert key != base_key("http://a/debian", [ca])
