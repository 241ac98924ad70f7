"""The README's CLI section against click's own commands: every command has its section and
synopsis, every option of a command is in its synopsis (or, --db and --config, in the options
common to all), and every option the README names exists; every `civicat ...` line in the
README's and docs' code blocks parses. Read from the command objects, so that a new option
fails here until the README says it, whoever adds it."""
from __future__ import annotations

import re
import shlex
import warnings

import click
import pytest

from harvester.cli import cli
from tests.docs_text import README, ROOT, SPEC, code_blocks, prose, section

COMMON = ("--db", "--config", "--help")   # said once for all commands, not in each synopsis


def readme_cli() -> str:
    return section(README.read_text(), "## CLI")


def options_of(command: click.Command) -> set[str]:
    return {name for param in command.params if isinstance(param, click.Option)
            for name in param.opts + param.secondary_opts}


def synopsis(name: str) -> str:
    """The command's synopsis: the first code span of its README section that starts with
    `civicat <name>`."""
    text = section(readme_cli(), f"### {name}")
    found = re.search(rf"`(civicat {re.escape(name)}\b[^`]*)`", text)
    assert found, f"README's '### {name}' has no synopsis `civicat {name} ...`"
    return found.group(1)


def named_options(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", text))


def test_every_command_has_a_section_of_the_readme_cli_and_every_section_a_command():
    sections = set(re.findall(r"^### (\S+)\s*$", readme_cli(), re.M)) - {"Common"}
    assert sections == set(cli.commands), (
        f"commands without a README section: {sorted(set(cli.commands) - sections)}; "
        f"sections of no command: {sorted(sections - set(cli.commands))}")


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_each_synopsis_names_exactly_the_options_of_its_command_and_an_example_follows(name):
    command = cli.commands[name]
    documented = named_options(synopsis(name))
    actual = options_of(command) - set(COMMON)
    assert documented == actual, (
        f"civicat {name}: options missing from the README's synopsis: {sorted(actual - documented)}; "
        f"named there but not options of the command: {sorted(documented - actual)}")
    examples = invocations(section(readme_cli(), f"### {name}"))
    assert any(args[:1] == [name] for args in examples), f"README's '### {name}' has no example to copy"


def test_the_common_options_name_the_commands_that_take_them():
    common = readme_cli().split("\n### ", 1)[0]
    assert "`--db PATH`" in common, "README's CLI section does not say every command takes --db PATH"
    assert all("--db" in options_of(command) for command in cli.commands.values())
    said = re.search(r"`--config PATH`[^;]*? for ((?:`[a-z]+`(?:, | and )?)+)", common)
    assert said, "README's CLI section does not say which commands take --config PATH"
    assert set(re.findall(r"`([a-z]+)`", said.group(1))) == {
        name for name, command in cli.commands.items() if "--config" in options_of(command)}
    for param in cli.params:   # -v, --log-format, --version: before the command
        assert named_options(common) & set(param.opts), f"README's CLI section does not name {param.opts}"


def test_the_documented_defaults_are_the_commands_defaults():
    """A number a command takes by default is the one its README section says (`default 4`,
    `default: the last 20 runs`)."""
    wrong = []
    for name, command in cli.commands.items():
        text = section(readme_cli(), f"### {name}")
        for param in command.params:
            if not isinstance(param, click.Option) or param.is_flag or param.name in ("db_path", "config_path"):
                continue
            # (`export --wait` alone: its flag_value, SECONDS left out)
            default = param.flag_value if param.default is None and isinstance(param.flag_value, (int, float)) \
                else param.default
            if isinstance(default, bool) or not isinstance(default, (int, float)):
                continue
            if not re.search(rf"default\b[^.;)]*?(?<![\d.,]){default:g}(?![\d.,]\d)", text):
                wrong.append(f"civicat {name} {param.opts[0]}: default {default:g} not said in its README section")
    assert not wrong, "\n".join(wrong)


def test_the_overlap_min_score_default_is_the_detectors():
    from catalog.overlap import DEFAULT_MIN_SCORE

    assert re.search(rf"`--min-score` \(0\.\.1, default {DEFAULT_MIN_SCORE:g}\)", section(readme_cli(), "### overlap"))


def command_line(line: str) -> list[list[str]]:
    """The arguments of each `civicat` in a shell line, up to a shell operator or a comment."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:   # (not shell: a Python or SQL line with an odd quote)
        return []
    found = []
    for start, token in enumerate(tokens):
        if (token == "civicat" or token.endswith("/civicat")) and tokens[start - 1:start] != ["cd"]:
            args = []
            for arg in tokens[start + 1:]:
                if arg in ("&&", "||", "|", ";", ">", ">>", "<", "2") or arg.startswith("#"):
                    break
                args.append(arg)
            found.append(args)
    return found


def invocations(text: str) -> list[list[str]]:
    """Every `civicat ...` command line of the code blocks of `text`, and every inline
    `civicat ...` span with an option (not a synopsis: no `[`, no `...`), as its arguments."""
    found = [args for block in code_blocks(text) for line in block.split("\n") for args in command_line(line)]
    for span in re.findall(r"`(civicat\s[^`]*)`", prose(text)):
        if "-" in span and not re.search(r"\[|\.\.\.|…", span):
            found += command_line(" ".join(span.split()))
    return found


def test_every_civicat_line_of_the_readme_and_docs_parses():
    """`civicat harvest --workers 4`, the crontab lines...: a renamed or removed option, a
    value out of range, fails here (click parses each line; nothing runs)."""
    pages = [README, *sorted((ROOT / "docs").glob("*.md"))]
    lines = [(page, args) for page in pages for args in invocations(page.read_text())]
    assert len([1 for page, _ in lines if page == README]) >= 10, "found too few civicat lines in the README"
    wrong = []
    for page, args in lines:
        try:
            with cli.make_context("civicat", list(args), resilient_parsing=False) as ctx:
                with warnings.catch_warnings():   # (click 9 leaves the command's name in args)
                    warnings.simplefilter("ignore", DeprecationWarning)
                    pending = [*getattr(ctx, "protected_args", ()), *ctx.args]
                name, command, rest = cli.resolve_command(ctx, pending)
                command.make_context(name, rest, parent=ctx)
        except click.exceptions.Exit:   # --help, --version
            continue
        except click.ClickException as exc:
            wrong.append(f"{page.relative_to(ROOT)}: civicat {shlex.join(args)}: {exc.format_message()}")
    assert not wrong, "\n".join(wrong)


def test_spec_cli_commands_exist_with_the_options_it_names():
    if not SPEC.is_file():
        pytest.skip(f"../shared/SPEC.md not found beside the repository: {SPEC}")
    spec_cli = section(SPEC.read_text(), "## CLI")
    for line in re.findall(r"^- `civicat ([a-z]+)([^`]*)`", spec_cli, re.M):
        name, rest = line
        assert name in cli.commands, f"SPEC's civicat {name} is no command"
        assert named_options(rest) <= options_of(cli.commands[name]), f"SPEC's civicat {name}{rest}"
        assert {"--db", "--json"} <= options_of(cli.commands[name]), f"civicat {name} lacks --db or --json"
