"""The lock files agree with pyproject.toml: every dependency of the project (and of the extras
the test suite installs) is pinned, with hashes, within its declared range; the default lock is
the test lock's subset; and `make test` runs on exactly the locked versions."""

import importlib.metadata
import os
import re
import tomllib

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
LOCKS = {name: REPO / "requirements" / f"{name}.txt" for name in ("default", "test")}


def read_lock(path) -> dict[str, tuple[Version, int]]:
    """{package: (pinned version, number of hashes)} of a pip-compile --generate-hashes file."""
    pins, current = {}, None
    for line in path.read_text().splitlines():
        pin = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line)
        if pin:
            current = canonicalize_name(pin[1])
            assert current not in pins, f"{path.name}: {current} pinned twice"
            pins[current] = (Version(pin[2]), 0)
        elif line.strip().startswith("--hash=sha256:") and current is not None:
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
        elif line and not line.startswith((" ", "#")):
            pytest.fail(f"{path.name}: '{line}' is not a pinned requirement")
    return pins


def requirements(extras: tuple[str, ...]) -> list[Requirement]:
    """The project's own requirements and build backend (`make` installs gan_jax without build
    isolation, so the lock must hold setuptools) plus those of `extras`, following the extras
    that name gan_jax itself (test -> tfds, torch, notebooks), for this platform's markers."""
    wanted, seen = list(extras), set()
    found = [Requirement(r) for r in PROJECT["dependencies"]
             + PYPROJECT["build-system"]["requires"]]
    while wanted:
        extra = wanted.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in PROJECT["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == canonicalize_name(PROJECT["name"]):
                wanted.extend(requirement.extras)
            else:
                found.append(requirement)
    environment = default_environment()
    return [r for r in found if r.marker is None or r.marker.evaluate(environment)]


@pytest.mark.parametrize("lock,extras", [("default", ()), ("test", ("test",))])
def test_every_dependency_is_pinned_within_its_range_with_hashes(lock, extras):
    pins = read_lock(LOCKS[lock])
    for requirement in requirements(extras):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in requirements/{lock}.txt: run make lock"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements/{lock}.txt pins {name}=={version}, outside pyproject's "
            f"'{requirement}': run make lock")
    assert all(hashes for _, hashes in pins.values()), "every pin needs its hashes"


def test_the_default_lock_is_the_test_locks_subset():
    default, test = read_lock(LOCKS["default"]), read_lock(LOCKS["test"])
    differing = {name: (pin[0], test.get(name, (None,))[0]) for name, pin in default.items()
                 if test.get(name, (None,))[0] != pin[0]}
    assert differing == {}


@pytest.mark.skipif(os.environ.get("GAN_JAX_LOCKED_ENV") != "1",
                    reason="run by make test, in the environment it installs from the lock")
def test_the_suite_runs_on_the_locked_versions():
    wrong = {}
    for name, (version, _) in read_lock(LOCKS["test"]).items():
        try:
            installed = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (str(version), installed and str(installed))
    assert wrong == {}, "installed versions differ from requirements/test.txt (locked, installed)"
