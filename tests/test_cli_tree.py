"""Meta-tests over the whole ``zengine`` command tree: the core commands and every command a
built-in plugin adds, down to the last nested action. Each has help text, each option and
argument says what it is for, each path is in the docs, and ``--help`` works everywhere."""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import ROOT
from zengine import cli
from zengine.plugins import ENTRY_POINT_GROUP, Hooks, create_plugin_manager


def _builtin_plugins() -> set[str]:
    """The plugins zengine itself ships: its own ``[project.entry-points.zengine]``."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return set(pyproject["project"]["entry-points"][ENTRY_POINT_GROUP])


def _parser() -> argparse.ArgumentParser:
    """The parser ``zengine`` builds, from the installed entry points as ``main`` loads them,
    with any other installed plugin (the example billing one, say) blocked."""
    builtin = _builtin_plugins()
    installed = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert builtin <= installed, f"built-in plugins not installed: {builtin - installed}"
    pm = create_plugin_manager(disabled=sorted(installed - builtin))
    loaded = {name for name, _ in pm.list_name_plugin()}
    assert builtin <= loaded, f"built-in plugins not loaded: {builtin - loaded}"
    return cli.build_parser(Hooks(pm).cli_commands())


@dataclass(frozen=True)
class Node:
    path: tuple[str, ...]  # ("users", "disable"); () is ``zengine`` itself
    parser: argparse.ArgumentParser
    help: str | None  # the line the parent's command list shows

    @property
    def name(self) -> str:
        return " ".join(("zengine", *self.path))


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = (),
          help_text: str | None = None) -> Iterator[Node]:
    yield Node(path, parser, help_text)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            listed = {choice.dest: choice.help for choice in action._choices_actions}
            for name, child in action.choices.items():
                yield from _walk(child, (*path, name), listed.get(name))


PARSER = _parser()
NODES = list(_walk(PARSER))
COMMANDS = [node for node in NODES if node.path]
#: Documented commands: every path from the core and the built-in plugins, not only the
#: core's (a renamed or vanished plugin command shows up here first).
EXPECTED = {"serve", "reload", "check-config", "render", "plugins", "init", "hash-password",
            "make-secret", "tenant-key", "users", "db", "tokens", "apikeys", "lockouts"}


def test_the_tree_holds_every_builtin_command() -> None:
    top = {node.path[0] for node in COMMANDS}
    assert top >= EXPECTED, f"commands missing from the parser: {EXPECTED - top}"
    assert ("users", "disable") in {node.path for node in COMMANDS}


@pytest.mark.parametrize("node", COMMANDS, ids=lambda n: n.name)
def test_every_command_has_help_and_a_description(node: Node) -> None:
    assert node.help and node.help.strip(), f"{node.name}: no help line in its parent's list"
    assert node.parser.description and node.parser.description.strip(), \
        f"{node.name}: no description for its own --help"


def _arguments(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        # argparse's own -h, and the sub-command slot (its choices are checked as commands).
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            yield action


@pytest.mark.parametrize("node", NODES, ids=lambda n: n.name)
def test_every_argument_has_help(node: Node) -> None:
    bare = [action.option_strings[0] if action.option_strings else action.metavar or action.dest
            for action in _arguments(node.parser)
            if not (isinstance(action.help, str) and action.help.strip()
                    and action.help != argparse.SUPPRESS)]
    assert not bare, f"{node.name}: arguments without help: {bare}"


FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _code(text: str) -> list[str]:
    """The code of one Markdown page: fenced blocks, indented blocks (four spaces after a
    blank line, as docs/api.md writes commands) and inline spans."""
    parts = FENCE.findall(text)
    rest = FENCE.sub("", text)
    previous_blank, in_block = True, False
    for line in rest.splitlines():
        in_block = line.startswith("    ") and (previous_blank or in_block)
        if in_block:
            parts.append(line)
        previous_blank = not line.strip()
    parts += re.findall(r"``?([^`]+)``?", rest)
    return parts


def _takes_config(parser: argparse.ArgumentParser) -> bool:
    return any("--config" in action.option_strings for action in parser._actions)


@pytest.mark.parametrize("node", [n for n in COMMANDS if len(n.path) > 1], ids=lambda n: n.name)
def test_config_may_follow_every_action(node: Node) -> None:
    """``zengine users add alice -c FILE`` works: so must each action of every command that
    takes ``--config``, or the same habit fails on one command only."""
    parent = next(n for n in NODES if n.path == node.path[:-1])
    if _takes_config(parent.parser):
        assert _takes_config(node.parser), f"{node.name}: no --config after the action"


def _documented_code() -> str:
    """Everything in code in README.md and docs/**/*.md, one string. Prose does not count
    ("zengine users" is also an English phrase); an operator copies commands from code."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return "\n".join(part for page in pages for part in _code(page.read_text(encoding="utf-8")))


DOCUMENTED = _documented_code()


@pytest.mark.parametrize("node", COMMANDS, ids=lambda n: n.name)
def test_every_command_path_is_documented(node: Node) -> None:
    # The whole path as typed, options after it allowed: `zengine users disable alice` counts
    # for "zengine users disable" (and for "zengine users"); "zengine users disabled" does not.
    pattern = re.compile(rf"(?<![\w./-]){re.escape(node.name)}(?![\w-])")
    assert pattern.search(DOCUMENTED), (
        f"`{node.name}` is in no code span or block of README.md or docs/*.md")


@pytest.mark.parametrize("node", NODES, ids=lambda n: n.name or "zengine")
def test_help_works_for_every_command(node: Node, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        PARSER.parse_args([*node.path, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {node.name}"), out[:200]
    if node.parser.description:
        # The description is what --help is for: it must be printed, not lost.
        assert node.parser.description.split()[0] in out


def test_the_docs_rule_counts_code_not_prose() -> None:
    page = ("Prose: zengine users enable alice.\n\n"
            "    zengine db check --config z.toml\n"
            "  zengine db current\n\n"
            "Inline `zengine tokens list`.\n\n"
            "```sh\nzengine users show alice\n```\n")
    code = "\n".join(_code(page))
    assert "zengine db check" in code and "zengine tokens list" in code
    assert "zengine users show" in code
    assert "users enable" not in code and "db current" not in code
