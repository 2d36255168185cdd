"""Every command shown in README.md and docs/*.md runs, as a reader would run it.

How it works (read this before adding a document or a code block):

- Every ``*.md`` file in the project root and under ``docs/`` is found by itself: a new
  document needs no change here.
- Fenced blocks marked ``bash``, ``sh``, ``shell`` or ``console`` are commands; other fences
  (``text``, ``python``, ``toml``, ``json`` ...) are not run. Write a synopsis with
  placeholders (``[--tenant T]``) as ``text``, and a runnable example as ``bash``.
- The blocks of one document run in order in ONE bash session (``set -eo pipefail``), in a
  fresh folder where ``tests/``, ``src/``, ``docs/``, ``benchmarks/`` and ``scripts/`` of the
  project are visible, with this virtualenv's ``drivetrain`` on the PATH and no
  ``DRIVETRAIN_*`` variables set: like a reader who follows the page in one terminal. A block
  may use what an earlier block made (files, exported variables, background jobs); every
  background job is killed when the document ends.
- ``console`` blocks: lines starting with ``$ `` are commands; the lines after a command are
  output the command must print. A command whose shown output contains no ``error`` must
  exit 0; one that shows an error may fail (``$ echo $?`` then shows its code).
- The well-known addresses the docs show are mapped to private ones, so documents run in
  parallel: ``127.0.0.1:8080`` (the API; ``DRIVETRAIN_API_PORT`` is set to match) and
  ``127.0.0.1:1883`` (the MQTT broker: a private Mosquitto is started for a document that
  names it).

A comment on the line just before a fence changes how it runs:

- ``<!-- doc-test: skip; because: REASON; covered-by: tests/FILE.py::test_NAME -->`` opts the
  block out. Both parts are required: the reason says why the block cannot run here (it needs
  minutes, the whole suite, a terminal ...), and ``covered-by`` names the test(s), comma-
  separated, that exercise the same commands; the test below fails when a named test does
  not exist. A block cannot be skipped silently.
- ``<!-- doc-test: background; ready: URL -->`` runs the block as a background job (a server)
  and waits until URL answers before the next block.
- ``<!-- doc-test: needs: server -->`` starts ``drivetrain serve`` in the background first
  (once per document) and waits for it.
- ``<!-- doc-test: replace: OLD => NEW -->`` (repeatable, ``;``-separated) substitutes text
  before running, e.g. a shorter ``--duration``; the substitution stays visible in the source
  of the page.
"""

from __future__ import annotations

import ast
import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
#: What a reader's checkout shows in the folder where the blocks run.
VISIBLE = ("tests", "src", "docs", "benchmarks", "scripts", "README.md", "pyproject.toml")
RUNNABLE = {"bash", "sh", "shell", "console"}
DOCUMENT_TIMEOUT_S = 300

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
_DIRECTIVE = re.compile(r"<!--\s*doc-test:((?:(?!-->).)*)-->\s*\Z", re.DOTALL)


@dataclass(frozen=True)
class Block:
    """One fenced block of a document."""

    doc: Path
    line: int
    lang: str
    text: str
    directive: dict[str, list[str]] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(PROJECT)}:{self.line}"


def documents() -> list[Path]:
    """README.md (and any other page at the root) and every page under docs/."""
    return sorted(PROJECT.glob("*.md")) + sorted((PROJECT / "docs").rglob("*.md"))


def _parse_directive(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in text.split(";"):
        key, sep, value = part.strip().partition(":")
        if key.strip():
            out.setdefault(key.strip(), []).append(value.strip() if sep else "")
    return out


def blocks_of(doc: Path) -> list[Block]:
    text = doc.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()]
        directive = _DIRECTIVE.search(before[-3000:])
        found.append(Block(doc, before.count("\n") + 1, match.group(1).lower(), match.group(2),
                           _parse_directive(directive.group(1)) if directive else {}))
    return found


def runnable(doc: Path) -> list[Block]:
    return [b for b in blocks_of(doc) if b.lang in RUNNABLE]


ALL_RUNNABLE = [b for doc in documents() for b in runnable(doc)]
SKIPPED = [b for b in ALL_RUNNABLE if "skip" in b.directive]
DOCS_TO_RUN = [doc for doc in documents() if any("skip" not in b.directive
                                                 for b in runnable(doc))]


# --- building one session script -------------------------------------------------------------
def _console_script(block: Block, index: int) -> tuple[str, list[tuple[str, list[str]]]]:
    """Bash for a console block, and each command with the output lines it must print."""
    commands: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif commands and line.strip():
            commands[-1][1].append(line.strip())
    lines = ["set +e"]
    for i, (command, _) in enumerate(commands):
        # keep $? of the previous command for an `echo $?` the page shows
        lines += [f"__rc=$?; echo '@@cmd {index}.{i}@@'; (exit $__rc)", command,
                  f"__rc=$?; echo \"@@rc {index}.{i} $__rc@@\"; (exit $__rc)"]
    lines.append("set -e")
    return "\n".join(lines), commands


def _session(blocks: list[Block], port: int) -> tuple[str, dict[int, list[tuple[str,
                                                                                 list[str]]]]]:
    # background jobs (servers, workers) end with the session, however it ends
    parts = [
        "set -eo pipefail",
        "trap '__s=$?; set +e; jobs -p | xargs -r kill 2>/dev/null; wait 2>/dev/null; exit $__s' EXIT",
        ("__wait() { for _ in $(seq 300); do curl -fsS -o /dev/null \"$1\" && return 0; "
         "sleep 0.2; done; echo \"not ready: $1\" >&2; return 1; }"),
    ]
    consoles: dict[int, list[tuple[str, list[str]]]] = {}
    server_started = False
    for index, block in enumerate(blocks):
        text = block.text
        for rule in block.directive.get("replace", []):
            old, _, new = rule.partition("=>")
            assert old.strip() in text, f"{block.where}: replace: {old.strip()!r} not in block"
            text = text.replace(old.strip(), new.strip())
        parts.append(f"echo '@@block {index}@@'")
        if "server" in block.directive.get("needs", []) and not server_started:
            parts.append("drivetrain serve >serve.log 2>&1 &\n__wait http://127.0.0.1:8080/healthz")
            server_started = True
        if block.lang == "console":
            script, commands = _console_script(block, index)
            consoles[index] = commands
            parts.append(script)
        elif "background" in block.directive:
            parts.append(f"(\n{text.strip()}\n) >bg-{index}.log 2>&1 &")
            for url in block.directive.get("ready", []):
                parts.append(f"__wait {url}")
        else:
            parts.append(text)
    parts.append("echo '@@done@@'")
    script = "\n".join(parts)
    return script.replace("127.0.0.1:8080", f"127.0.0.1:{port}"), consoles


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _workspace(tmp_path: Path) -> Path:
    work = tmp_path / "reader"
    work.mkdir()
    for name in VISIBLE:
        (work / name).symlink_to(PROJECT / name)
    return work


def _environment(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIVETRAIN_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DRIVETRAIN_API_PORT"] = str(port)
    env["COLUMNS"] = "160"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _check_consoles(output: str, consoles: dict[int, list[tuple[str, list[str]]]]) -> None:
    for index, commands in consoles.items():
        for i, (command, expected) in enumerate(commands):
            start = output.index(f"@@cmd {index}.{i}@@")
            end = output.index(f"@@rc {index}.{i} ", start)
            shown = output[start:end]
            code = int(re.match(r"@@rc \S+ (\d+)@@", output[end:]).group(1))  # type: ignore[union-attr]
            for line in expected:
                assert line in shown, f"`{command}` should print {line!r}; it printed:\n{shown}"
            if not any("error" in line for line in expected):
                assert code == 0, f"`{command}` exited {code}:\n{shown}"


# --- the tests ---------------------------------------------------------------------------------
@pytest.mark.embedded_only(reason="a reader's bare terminal: no DRIVETRAIN_* settings, so the "
                           "embedded default whatever the suite's profile")
@pytest.mark.parametrize("doc", DOCS_TO_RUN, ids=lambda d: str(d.relative_to(PROJECT)))
def test_the_commands_of_the_page_run(
    doc: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    blocks = [b for b in runnable(doc) if "skip" not in b.directive]
    port = _free_port()
    script, consoles = _session(blocks, port)
    if "127.0.0.1:1883" in script:
        broker = request.getfixturevalue("private_broker")
        script = script.replace("mqtt://127.0.0.1:1883", broker.url)
    work = _workspace(tmp_path)
    (work / "session.sh").write_text(script)
    process = subprocess.Popen(
        ["bash", "session.sh"], cwd=work, env=_environment(port), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=DOCUMENT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{doc.name}: the commands did not finish in {DOCUMENT_TIMEOUT_S} s:\n"
                    f"{output[-4000:]}")
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)  # the background jobs
        except ProcessLookupError:
            pass
    if "@@done@@" not in output or process.returncode != 0:
        reached = re.findall(r"@@block (\d+)@@", output)
        block = blocks[int(reached[-1])] if reached else blocks[0]
        pytest.fail(f"the block at {block.where} failed (exit {process.returncode}):\n"
                    f"{block.text}\n--- output ---\n{output[-4000:]}")
    _check_consoles(output, consoles)


@pytest.mark.parametrize("block", SKIPPED, ids=lambda b: b.where)
def test_an_opted_out_block_says_why_and_names_the_tests_that_cover_it(block: Block) -> None:
    reasons = [r for r in block.directive.get("because", []) if r]
    covered = [name.strip() for item in block.directive.get("covered-by", [])
               for name in item.split(",") if name.strip()]
    assert reasons, f"{block.where}: a skipped block must say `because: ...`"
    assert covered, f"{block.where}: a skipped block must name `covered-by: tests/...::test_x`"
    for name in covered:
        path, _, function = name.partition("::")
        source = PROJECT / path
        assert source.is_file(), f"{block.where}: covered-by {name}: no file {path}"
        defined = {node.name for node in ast.walk(ast.parse(source.read_text()))
                   if isinstance(node, ast.FunctionDef)}
        assert function in defined, f"{block.where}: covered-by {name}: no test {function}"


def test_every_page_is_found_and_no_runnable_block_is_a_synopsis() -> None:
    pages = {d.relative_to(PROJECT).as_posix() for d in documents()}
    assert {"README.md", "docs/lake.md", "docs/vss.md"} <= pages
    synopses = [b.where for b in ALL_RUNNABLE if "skip" not in b.directive
                and ("[--" in b.text or "…" in b.text or re.search(r"<[A-Z_]+>", b.text))]
    assert synopses == [], "write a synopsis with placeholders as a `text` block"


# --- the tests named by the README's opted-out blocks -----------------------------------------
def test_the_install_block_gives_a_working_drivetrain_command(tmp_path: Path) -> None:
    """The README's install: a new virtualenv, `pip install -e .` of this checkout, activate,
    `drivetrain`. The dependencies come from this test's environment (a .pth file), so the
    test takes seconds; the project itself is built and installed as the README does."""
    import sysconfig

    subprocess.run([sys.executable, "-m", "venv", ".venv"], cwd=tmp_path, check=True,
                   timeout=120)
    new_python = tmp_path / ".venv" / "bin" / "python"
    new_site = subprocess.run(
        [str(new_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip()
    Path(new_site, "outer-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [str(tmp_path / ".venv" / "bin" / "pip"), "install", "-q", "--no-deps", "-e",
         str(PROJECT)], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert install.returncode == 0, install.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = "/usr/bin:/bin"
    bare = subprocess.run(["bash", "-c", "drivetrain --version"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False)
    assert bare.returncode == 127  # "command not found": why the README says to activate
    activate = "source .venv/bin/activate && command -v drivetrain && drivetrain --version"
    activated = subprocess.run(["bash", "-c", activate], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=120, check=False)
    assert activated.returncode == 0, activated.stderr
    from drivetrain import __version__

    where, version = activated.stdout.splitlines()
    assert where == str(tmp_path / ".venv" / "bin" / "drivetrain")
    assert version == f"drivetrain {__version__}"


def test_scripts_test_installs_the_services_and_runs_the_suite() -> None:
    """`scripts/test` is this suite's entry point (running it here would run the suite within
    itself): it parses, installs the test extras, starts the real servers, runs pytest."""
    script = PROJECT / "scripts" / "test"
    assert os.access(script, os.X_OK)
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    text = script.read_text()
    for step in ('-e ".[test]"', "ensure_postgres", "ensure_mosquitto", "-m pytest"):
        assert step in text, step
