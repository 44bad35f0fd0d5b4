"""The hash locks (issue 19 item 5): every install reads a lock, pip checks every hash.

scripts/lock.py writes each requirements*.txt from its requirements*.in with
uv and checks them; these tests hold the committed locks to their inputs and
to each other, and the Makefile and the workflows to installing only from
them with ``--require-hashes``. That the Lambda zip holds exactly
requirements.txt's versions is checked on the zip itself
(tests/functional/test_artifact.py).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from scripts.lock import LOCKS, Lock, pip_sources, problems, read_input, read_lock

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
LOCK_FILES = {lock.target for lock in LOCKS}
HASH = "--hash=sha256:" + "a" * 64


def lock_named(target: str) -> Lock:
    return next(lock for lock in LOCKS if lock.target == target)


@pytest.mark.parametrize("lock", LOCKS, ids=lambda lock: lock.target)
def test_each_lock_matches_its_input(lock: Lock) -> None:
    assert problems(lock) == []


def test_every_requirements_input_has_a_lock() -> None:
    inputs = {p.name for p in PROJECT_DIR.glob("requirements*.in")}
    assert inputs == {lock.source for lock in LOCKS}
    assert {p.name for p in PROJECT_DIR.glob("requirements*.txt")} == LOCK_FILES
    # A lock names no machine's indexes or paths.
    for target in LOCK_FILES:
        text = (PROJECT_DIR / target).read_text()
        assert not re.search(r"^\s*(-e|--index-url|--extra-index-url|--find-links|-f)\b|file:",
                             text, re.M), target


@pytest.mark.parametrize(("source", "lock", "constraint", "problem"), [
    ("a==1\n", f"a==1 \\\n    {HASH}\n    # via -r x.in\n", "", None),
    ("a==1\n", "a==1\n", "", "a is not an exact pin with hashes"),
    ("a==2\n", f"a==1 {HASH}\n", "", "a is 1, x.in says 2: run make lock"),
    ("-r y.in\n", f"a==1 {HASH}\n", "", "b is None, x.in says 3: run make lock"),
    ("a==1\n", f"a==1 {HASH}\nb==2 ; sys_platform == 'linux' {HASH}\n", f"b==1 {HASH}\n",
     "b is 2, c.txt has 1: run make lock"),
])
def test_problems_name_what_is_wrong(tmp_path: Path, source: str, lock: str, constraint: str,
                                     problem: str | None) -> None:
    (tmp_path / "x.in").write_text(source)
    (tmp_path / "y.in").write_text("b==3\n")
    (tmp_path / "x.txt").write_text(lock)
    (tmp_path / "c.txt").write_text(constraint)
    found = problems(Lock("x.in", "x.txt", (), ("c.txt",)), root=tmp_path)
    assert found == ([] if problem is None else [f"x.txt: {problem}"])


def test_an_input_pins_exactly(tmp_path: Path) -> None:
    (tmp_path / "x.in").write_text("a>=1\n")
    with pytest.raises(ValueError, match="pin it exactly"):
        read_input(tmp_path / "x.in")


def test_a_lock_line_reads_name_version_marker_and_hashes() -> None:
    (pin,) = read_lock(f"Foo_Bar[x]==1.0 ; sys_platform != 'win-32' \\\n    {HASH} \\\n"
                       f"    --hash=sha256:{'b' * 64}\n    # via baz\n")
    assert (pin.name, pin.version, pin.marker, len(pin.hashes)) == (
        "foo-bar", "1.0", "sys_platform != 'win-32'", 2)


@pytest.mark.parametrize(("listing", "args"), [
    ("global.extra-index-url='file:///a/simple file:///b/simple'\n"
     "global.constraint='/etc/xdg/pip/constraints.txt'\n",
     ["--extra-index-url", "file:///a/simple", "--extra-index-url", "file:///b/simple"]),
    (":env:.find-links='/opt/wheels'\nglobal.find-links='/opt/wheels'\n"
     "global.index-url='https://mirror/simple'\nglobal.cert='/etc/ssl/x.crt'\n",
     ["--find-links", "/opt/wheels", "--index-url", "https://mirror/simple"]),
    ("", []),
])
def test_pips_sources_are_passed_on_and_its_constraint_is_not(
        listing: str, args: list[str]) -> None:
    assert pip_sources(listing) == args


def makefile_installs() -> list[str]:
    text = (PROJECT_DIR / "Makefile").read_text()
    (flags,) = re.findall(r"^PIP_INSTALL := (.*)$", text, re.M)
    assert "--require-hashes" in flags.split()
    lines = [line.strip() for line in text.splitlines() if line.startswith("\t")]
    installs = [line for line in lines if "pip install" in line or "$(PIP_INSTALL)" in line]
    assert all("$(PIP_INSTALL)" in line for line in installs), installs
    return installs


def test_the_makefile_installs_only_from_locks() -> None:
    installs = makefile_installs()
    read = [re.findall(r"-r (\S+)", line) for line in installs]
    assert all(len(files) == 1 and files[0] in LOCK_FILES for files in read), installs
    assert {f for files in read for f in files} == LOCK_FILES - {
        "requirements.txt", "requirements-deploy.txt"}  # chalice's and the deploy job's


def test_make_run_installs_the_run_lock_alone() -> None:
    text = (PROJECT_DIR / "Makefile").read_text()
    recipe = text.split("$(RUN_STAMP): requirements-run.txt requirements-run-nodeps.txt\n",
                        1)[1].split("\n\n", 1)[0]
    # the run lock, then Meta's tokenizer package alone (--no-deps), which the emulator reads
    assert re.findall(r"-r (\S+)", recipe) == ["requirements-run.txt", "requirements-run-nodeps.txt"]
    assert "--no-deps -r requirements-run-nodeps.txt" in recipe
    assert re.search(r"^run: \$\(RUN_STAMP\) ", text, re.M)
    # None of the test toolchain is in it, and all of it is in the dev lock
    # at the same versions (so make test after make run only adds).
    test_only = set(read_input(PROJECT_DIR / "requirements-dev.in")) - set(
        read_input(PROJECT_DIR / "requirements-run.in"))
    run = {p.name: p.version for p in read_lock((PROJECT_DIR / "requirements-run.txt").read_text())}
    dev = {p.name: p.version for p in read_lock((PROJECT_DIR / "requirements-dev.txt").read_text())}
    assert {"pytest", "playwright", "langchain", "litellm", "schemathesis"} <= test_only
    # referencing: pinned for openapi-core, and a dependency of the app's jsonschema
    assert test_only & set(run) == {"referencing"}
    assert {name: dev.get(name) for name in run} == run
    assert lock_named("requirements-dev.txt").constraints == ("requirements-run.txt",)


def test_the_workflows_install_only_from_locks() -> None:
    runs = []
    for path in PROJECT_DIR.glob(".github/workflows/*.yml"):
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            runs += [step["run"] for step in job.get("steps", []) if "run" in step]
    installs = [run for run in runs if "pip install" in run or "pip3 install" in run]
    # the deploy job: chalice and boto3, and Meta's tokenizer package for the build step
    assert [line for run in installs for line in run.splitlines() if "pip install" in line] == [
        "python -m pip install --require-hashes -r requirements-deploy.txt",
        "python -m pip install --require-hashes --no-deps -r requirements-run-nodeps.txt"]
    # Everything else a workflow runs comes from make, which reads the locks.
    assert "make test" in runs and "make check-templates" in runs
