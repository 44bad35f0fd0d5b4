"""``make lock``: each requirements input (``*.in``) compiled by uv into its hash lock (``*.txt``).

Every install the project makes reads a lock, with ``pip install --require-hashes``:
the Lambda zip (``chalice package``/``deploy`` run ``pip download -r requirements.txt``,
which checks hashes once the file has them), ``make run``, ``make test`` (and so CI,
``.ci/run``), the checkov and Lambda-runtime venvs and the deploy job. A lock holds
the whole dependency closure at exact versions, each with the sha256 of every file
the index has for that version.

Why uv compiles and pip installs: uv resolves for a platform other than the host
(the Lambda zip is locked for CPython 3.11 on manylinux x86_64, whoever runs
this), resolves universally (one dev lock for Linux and macOS), locks a file
``--no-deps`` (requirements-nodeps.txt, whose packages cap versions the suite
overrides) and takes seconds; pip then installs from its own warm cache with
nothing new to bootstrap, as chalice's packager does anyway.

uv reads no pip configuration, so the indexes pip is configured with
(``pip config list``: index-url, extra-index-url, find-links, from files or
``PIP_*`` variables) are passed on, and uv picks the best version across all of
them as pip does (``--index-strategy unsafe-best-match``). pip's ``constraint``
setting is deliberately not passed on: a machine's own caps must not shape
the project's locks.

Locks are layered so that installs only add: requirements-run.txt is compiled
under requirements.txt's versions, requirements-dev.txt and requirements-deploy.txt
under requirements-run.txt's. An existing lock's versions are kept unless its
input changed them; ``--upgrade`` (all) or ``--upgrade-package NAME`` moves them.
Run it as ``make lock`` (``make lock ARGS=--upgrade``); it ends with ``--check``,
which the tests run too: every locked line an exact pin with hashes, every pin of
an input (and of the files it includes) in its lock at that version, and every
version a lock shares with its constraint lock the same.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
UV = Path(sys.executable).parent / "uv"
# The oldest Python the locks serve: 3.11.5, which pymdown-extensions (the docs
# site) requires; the Lambda runtime and every machine here run a newer 3.11.
PYTHON_VERSION = "3.11.5"
# Lambda's python3.11 runtime: Amazon Linux 2, glibc 2.26, x86_64 (the
# functions' default architecture); manylinux_2_17 is the newest tag below it.
LAMBDA_PLATFORM = ("--python-platform", "x86_64-manylinux_2_17")
UNIVERSAL = ("--universal",)


@dataclass(frozen=True)
class Lock:
    source: str
    target: str
    scope: tuple[str, ...]
    constraints: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()  # uv --override: a dependency's own bound set aside


# In order: a lock constrained by another comes after it.
LOCKS = (
    Lock("requirements.in", "requirements.txt", LAMBDA_PLATFORM),
    Lock("requirements-lambda-runtime.in", "requirements-lambda-runtime.txt", LAMBDA_PLATFORM),
    Lock("requirements-run.in", "requirements-run.txt", UNIVERSAL, ("requirements.txt",)),
    Lock("requirements-dev.in", "requirements-dev.txt", UNIVERSAL, ("requirements-run.txt",),
         ("lock-overrides.txt",)),
    Lock("requirements-deploy.in", "requirements-deploy.txt", UNIVERSAL, ("requirements-run.txt",)),
    Lock("requirements-run-nodeps.in", "requirements-run-nodeps.txt", UNIVERSAL + ("--no-deps",)),
    Lock("requirements-nodeps.in", "requirements-nodeps.txt", UNIVERSAL + ("--no-deps",)),
    Lock("requirements-checkov.in", "requirements-checkov.txt", UNIVERSAL),
    Lock("requirements-lock.in", "requirements-lock.txt", UNIVERSAL),
)


@dataclass(frozen=True)
class Pin:
    name: str  # normalised as PEP 503 compares names
    version: str
    marker: str
    hashes: tuple[str, ...]


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def logical_lines(text: str) -> list[str]:
    """The lines of a requirements file, with backslash continuations joined."""
    return [line.strip() for line in text.replace("\\\n", " ").splitlines()]


# name[extras]==version ; marker --hash=... (a lock line; an input's has no hashes)
REQUIREMENT = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(==\s*([^\s;]+))?"
                         r"\s*(;.*?)?((?:\s*--hash=\S+)*)")


def read_lock(text: str) -> list[Pin]:
    pins = []
    for line in logical_lines(text):
        if line and not line.startswith("#"):
            match = REQUIREMENT.fullmatch(line.split(" #", 1)[0].strip())
            if not match:
                raise ValueError(f"not a locked requirement: {line!r}")
            hashes = tuple(re.findall(r"--hash=(sha256:[0-9a-f]{64})", match.group(6)))
            pins.append(Pin(normalise(match.group(1)), match.group(4) or "",
                            (match.group(5) or ";").lstrip(";").strip(), hashes))
    return pins


def read_input(path: Path) -> dict[str, str]:
    """An input's exact pins, name -> version, with those of the files it
    includes (-r); its constraint files (-c) are not its own."""
    pins: dict[str, str] = {}
    for line in logical_lines(path.read_text()):
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r"):
            pins.update(read_input(path.parent / line[2:].strip()))
        elif line and not line.startswith("-"):
            match = REQUIREMENT.fullmatch(line)
            if not match or not match.group(4):
                raise ValueError(f"{path.name}: pin it exactly (name==version): {line!r}")
            pins[normalise(match.group(1))] = match.group(4)
    return pins


def problems(lock: Lock, root: Path = PROJECT_DIR) -> list[str]:
    """What is wrong with a lock as committed, each as one line."""
    found = []
    target = root / lock.target
    if not target.exists():
        return [f"{lock.target} is missing: run make lock"]
    pins = read_lock(target.read_text())
    locked = {p.name: p.version for p in pins}
    for pin in pins:
        if not pin.version or not pin.hashes:
            found.append(f"{lock.target}: {pin.name} is not an exact pin with hashes")
    for name, version in read_input(root / lock.source).items():
        if locked.get(name) != version:
            found.append(f"{lock.target}: {name} is {locked.get(name)}, "
                         f"{lock.source} says {version}: run make lock")
    for constraint in lock.constraints:
        for pin in read_lock((root / constraint).read_text()):
            if pin.name in locked and locked[pin.name] != pin.version:
                found.append(f"{lock.target}: {pin.name} is {locked[pin.name]}, "
                             f"{constraint} has {pin.version}: run make lock")
    return found


SOURCE_KEYS = {"index-url": "--index-url", "extra-index-url": "--extra-index-url",
               "find-links": "--find-links"}


def pip_sources(listing: str) -> list[str]:
    """uv's index arguments for the sources in ``pip config list``'s output
    (``global.extra-index-url='a b'``, ``:env:.find-links='/opt/wheels'``).
    A key set in several places counts once per value; constraint is left out."""
    args: list[str] = []
    for line in listing.splitlines():
        match = re.fullmatch(r"[^.]*\.([a-z-]+)='(.*)'", line.strip())
        if not match or match.group(1) not in SOURCE_KEYS:
            continue
        flag = SOURCE_KEYS[match.group(1)]
        for value in match.group(2).split():
            pair = [flag, value]
            if not any(args[i:i + 2] == pair for i in range(0, len(args), 2)):
                args += pair
    return args


def compile_args(lock: Lock, sources: list[str], extra: list[str]) -> list[str]:
    constraints = [arg for c in lock.constraints for arg in ("--constraint", c)]
    constraints += [arg for o in lock.overrides for arg in ("--override", o)]
    return [str(UV), "pip", "compile", lock.source, "--output-file", lock.target,
            "--generate-hashes", "--no-config", "--no-python-downloads",
            "--python-version", PYTHON_VERSION,
            *lock.scope, *constraints, "--index-strategy", "unsafe-best-match", *sources,
            "--custom-compile-command", "make lock", *extra]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upgrade", action="store_true", help="move every pin to the newest allowed")
    parser.add_argument("--upgrade-package", action="append", default=[], metavar="NAME",
                        help="move this package only (repeatable)")
    parser.add_argument("--check", action="store_true", help="only check the committed locks")
    args = parser.parse_args(argv)
    if args.check:
        found = [line for lock in LOCKS for line in problems(lock)]
        print("\n".join(found) or f"lock: the {len(LOCKS)} locks match their inputs")
        return 1 if found else 0
    if not UV.exists():
        print(f"lock: {UV} is missing (make lock installs it from requirements-lock.txt)")
        return 1
    listing = subprocess.run([sys.executable, "-m", "pip", "config", "list"], check=True,
                             capture_output=True, text=True).stdout
    sources = pip_sources(listing)
    extra = ["--upgrade"] if args.upgrade else []
    for name in args.upgrade_package:
        extra += ["--upgrade-package", name]
    for lock in LOCKS:
        print(f"lock: {lock.source} -> {lock.target}", flush=True)
        done = subprocess.run(compile_args(lock, sources, extra), cwd=PROJECT_DIR,
                              stdout=subprocess.DEVNULL)
        if done.returncode:
            return done.returncode
    return main(["--check"])


if __name__ == "__main__":
    sys.exit(main())
