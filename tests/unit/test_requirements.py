"""Requirements parsing and what a serving base is missing."""

from __future__ import annotations

import pytest
from packaging.requirements import Requirement

from modelrelease.domain.requirements import (
    DependencySet,
    missing_requirements,
    parse_requirements,
)
from modelrelease.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", [], id="empty"),
        pytest.param("numpy\nscikit-learn==1.5.0\n", ["numpy", "scikit-learn==1.5.0"],
                     id="two-lines"),
        pytest.param("# a comment\n\n   \nnumpy", ["numpy"], id="comments-and-blanks"),
        pytest.param("numpy>=1.26  # inline comment", ["numpy>=1.26"], id="inline-comment"),
        pytest.param("-r base.txt\n--index-url https://x\n-e .\n-c c.txt\npandas",
                     ["pandas"], id="pip-options-skipped"),
        pytest.param("  requests[socks] >=2 ; python_version >= '3.8'  ",
                     ['requests[socks]>=2; python_version >= "3.8"'], id="extras-and-marker"),
        pytest.param("pkg @ https://example.com/pkg.whl#sha256=abc",
                     ["pkg @ https://example.com/pkg.whl#sha256=abc"],
                     id="url-fragment-is-not-a-comment"),
        pytest.param("a\r\nb\r\n", ["a", "b"], id="crlf"),
    ],
)
def test_parse_requirements(text: str, expected: list[str]) -> None:
    assert [str(r) for r in parse_requirements(text)] == expected


@pytest.mark.parametrize(
    ("text", "source", "message"),
    [
        pytest.param("numpy\nnot a requirement!\n", "requirements.txt",
                     "read requirements.txt line 2: 'not a requirement!' is not a requirement (",
                     id="second-line"),
        pytest.param("\n\n# c\nfoo==", "model/requirements.txt",
                     "read model/requirements.txt line 4: 'foo==' is not a requirement (",
                     id="line-counts-skipped-lines"),
        pytest.param("foo >= 1 # ok\nbar>=>1", "r.txt", "line 2: 'bar>=>1'", id="bad-specifier"),
    ],
)
def test_parse_requirements_error_names_the_line(text: str, source: str, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_requirements(text, source=source)
    assert message in str(info.value)
    assert info.value.__cause__ is not None


def test_parse_requirements_tab_before_comment() -> None:
    assert [str(r) for r in parse_requirements("numpy\t# pinned")] == ["numpy"]


LINUX_311 = {"python_version": "3.11", "sys_platform": "linux", "platform_system": "Linux"}


@pytest.mark.parametrize(
    ("requirements", "provided", "environment", "expected"),
    [
        pytest.param([], {"numpy": "1.26.4"}, LINUX_311, [], id="nothing-required"),
        pytest.param(["numpy"], {"numpy": "1.26.4"}, LINUX_311, [], id="unpinned-provided"),
        pytest.param(["numpy"], {}, LINUX_311, ["numpy"], id="not-provided"),
        pytest.param(["numpy==1.26.4"], {"numpy": "1.26.4"}, LINUX_311, [], id="exact-match"),
        pytest.param(["numpy==1.26.4"], {"numpy": "2.0.0"}, LINUX_311, ["numpy==1.26.4"],
                     id="exact-mismatch"),
        pytest.param(["numpy>=1.20,<2"], {"numpy": "1.26.4"}, LINUX_311, [], id="range-inside"),
        pytest.param(["numpy>=1.20,<2"], {"numpy": "2.1.0"}, LINUX_311, ["numpy<2,>=1.20"],
                     id="range-outside"),
        pytest.param(["numpy~=1.26.0"], {"numpy": "1.26.9"}, LINUX_311, [], id="compatible"),
        pytest.param(["torch>=2.1"], {"torch": "2.1.0rc1"}, LINUX_311, ["torch>=2.1"],
                     id="prerelease-below-bound"),
        pytest.param(["torch>=2.1.0rc0"], {"torch": "2.1.0rc1"}, LINUX_311, [],
                     id="prerelease-allowed"),
        pytest.param(["numpy==1.26.4"], {"numpy": "not-a-version"}, LINUX_311, ["numpy==1.26.4"],
                     id="invalid-provided-version-counts-as-missing"),
        pytest.param(["Scikit_Learn==1.5.0"], {"scikit-learn": "1.5.0"}, LINUX_311, [],
                     id="required-name-normalised"),
        pytest.param(["scikit-learn==1.5.0"], {"SciKit.Learn": "1.5.0"}, LINUX_311, [],
                     id="provided-name-normalised"),
        pytest.param(["pywin32; sys_platform == 'win32'"], {}, LINUX_311, [],
                     id="marker-false-dropped"),
        pytest.param(["uvloop; sys_platform == 'linux'"], {}, LINUX_311,
                     ['uvloop; sys_platform == "linux"'], id="marker-true-kept"),
        pytest.param(["tomli; python_version < '3.11'"], {},
                     {"python_version": "3.10"}, ['tomli; python_version < "3.11"'],
                     id="environment-overrides-default"),
        pytest.param(["tomli; python_version < '3.11'"], {}, LINUX_311, [],
                     id="environment-marker-false"),
        pytest.param(["b", "A", "c==1", "B>=0"], {"c": "2"}, LINUX_311,
                     ["A", "b", "B>=0", "c==1"], id="sorted-case-insensitively"),
        pytest.param(["numpy", "numpy"], {}, LINUX_311, ["numpy"], id="duplicates-once"),
        pytest.param(["pandas[parquet]>=2"], {"pandas": "2.2.0"}, LINUX_311, [],
                     id="extras-ignored-for-satisfaction"),
    ],
)
def test_missing_requirements(
    requirements: list[str],
    provided: dict[str, str],
    environment: dict[str, str],
    expected: list[str],
) -> None:
    reqs = [Requirement(r) for r in requirements]
    assert missing_requirements(reqs, provided, environment) == expected


def test_missing_requirements_default_environment_is_this_interpreter() -> None:
    reqs = [Requirement("always; python_version >= '3'"),
            Requirement("never; python_version < '3'")]
    assert missing_requirements(reqs, {}) == ['always; python_version >= "3"']


BASE_SET = DependencySet(("numpy==1.26.4", "pandas==2.2.0"), "3.11", "linux/amd64")


def test_dependency_set_key_is_stable() -> None:
    same = DependencySet(("numpy==1.26.4", "pandas==2.2.0"), "3.11", "linux/amd64")
    assert BASE_SET.key == same.key
    assert len(BASE_SET.key) == 32
    assert int(BASE_SET.key, 16) >= 0
    # Pinned: the key is part of cache paths, so it must not change between releases.
    assert BASE_SET.key == "5dde1a4547548cdf821104d970358253"


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(DependencySet(("numpy==1.26.4",), "3.11", "linux/amd64"),
                     id="fewer-requirements"),
        pytest.param(DependencySet(("numpy==1.26.3", "pandas==2.2.0"), "3.11", "linux/amd64"),
                     id="other-pin"),
        pytest.param(DependencySet(("pandas==2.2.0", "numpy==1.26.4"), "3.11", "linux/amd64"),
                     id="other-order"),
        pytest.param(DependencySet(("numpy==1.26.4", "pandas==2.2.0"), "3.12", "linux/amd64"),
                     id="python-version"),
        pytest.param(DependencySet(("numpy==1.26.4", "pandas==2.2.0"), "3.11", "linux/arm64"),
                     id="platform"),
        pytest.param(DependencySet(("numpy==1.26.4pandas==2.2.0",), "3.11", "linux/amd64"),
                     id="joined-requirements"),
    ],
)
def test_dependency_set_key_is_sensitive_to_each_field(other: DependencySet) -> None:
    assert other.key != BASE_SET.key
