"""The GitHub workflows are valid YAML and do what .ci/run does, with the same versions."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.9/3.10: pytest itself depends on tomli there
    import tomli as tomllib


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return data


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def _uses(job: dict[str, Any]) -> list[str]:
    return [step["uses"] for step in job["steps"] if "uses" in step]


def _lower_bounds() -> dict[str, Version]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["redis"]
    bounds = {}
    for spec in specs:
        name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", spec).groups()  # type: ignore[union-attr]
        bounds[name.lower()] = Version(version)
    return bounds


def _pins(text: str) -> dict[str, Version]:
    return {n.lower(): Version(v) for n, v in re.findall(r"([A-Za-z0-9_.-]+)==([0-9.]+)", text)}


def test_every_workflow_is_valid_yaml_with_jobs() -> None:
    """ci.yml, docs.yml and release.yml parse and define jobs."""
    names = sorted(p.name for p in WORKFLOWS.glob("*.yml"))
    assert names == ["ci.yml", "docs.yml", "release.yml"]
    for name in names:
        assert _load(name)["jobs"], name


def test_ci_lints_types_and_tests_every_supported_python() -> None:
    """ci.yml runs ruff, mypy --strict and the suite on 3.9-3.13, like .ci/run."""
    jobs = _load("ci.yml")["jobs"]
    lint = _runs(jobs["lint"])
    assert "ruff check src tests" in lint
    assert "ruff format --check src tests" in lint
    assert "mypy --strict src tests/typing" in lint
    assert jobs["tests"]["strategy"]["matrix"]["python-version"] == [
        "3.9",
        "3.10",
        "3.11",
        "3.12",
        "3.13",
    ]
    assert "python -m pytest" in _runs(jobs["tests"])
    assert "redis-server" in _runs(jobs["tests"])
    assert "mkdocs build --strict" in _runs(jobs["docs"])
    package = _runs(jobs["package"])
    assert "python -m build" in package
    assert "twine check" in package
    ci_run = (ROOT / ".ci" / "run").read_text()
    for command in (
        "check src tests",
        "--strict src tests/typing",
        "build --strict",
    ):
        assert command in ci_run, command


def test_oldest_versions_agree_everywhere() -> None:
    """The oldest-dependency pins equal pyproject's lower bounds, in ci.yml and .ci/run."""
    bounds = _lower_bounds()
    ci_pins = _pins(_runs(_load("ci.yml")["jobs"]["oldest"]))
    script = (ROOT / ".ci" / "run").read_text()
    oldest_line = next(line for line in script.splitlines() if line.startswith("OLDEST="))
    assert ci_pins == bounds
    assert _pins(oldest_line) == bounds


def test_docs_workflow_deploys_pages_with_write_permission() -> None:
    """docs.yml builds strictly and deploys to GitHub Pages on pushes to main."""
    docs = _load("docs.yml")
    assert docs["permissions"] == {"contents": "write"}
    assert docs[True]["push"]["branches"] == ["main"]  # YAML reads the key "on" as True
    runs = _runs(docs["jobs"]["deploy"])
    assert "mkdocs build --strict" in runs
    assert "mkdocs gh-deploy" in runs


def test_release_workflow_uses_trusted_publishing() -> None:
    """release.yml builds sdist and wheel once and publishes with an OIDC token, no secret."""
    release = _load("release.yml")
    build, publish = release["jobs"]["build"], release["jobs"]["publish"]
    assert "python -m build" in _runs(build)
    assert "twine check" in _runs(build)
    assert publish["needs"] == "build"
    assert publish["permissions"] == {"id-token": "write"}
    assert "pypa/gh-action-pypi-publish@release/v1" in _uses(publish)
    assert "secrets" not in (WORKFLOWS / "release.yml").read_text()
