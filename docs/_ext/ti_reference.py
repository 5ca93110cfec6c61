"""The reference pages, generated from the code when the docs are built.

Four MyST directives, so that the reference can't drift from what the app does:

- ``{cli-reference}``: every sub-command of ``manage.py trusted_identity`` with the
  ``--help`` its parser prints (``trusted_identity.management.grammar``).
- ``{settings-reference}``: every setting of ``trusted_identity.conf.SETTINGS``, with its
  default, the values it takes, its environment variable and its one-line doc; the
  directive's body adds notes per setting (``NAME: text``).
- ``{system-checks}``: every check id the app registers (``trusted_identity/checks.py``
  and the settings' own), its level and when it runs, read from the code; the body
  says when each fires (``ID: text``), and must name every id, no more.
- ``{error-codes}``: every HTTP error code, with its status, from
  ``trusted_identity.exceptions`` and the views' ``error_response`` calls; the body
  says when each is answered (``code: text``), and must name every code, no more.

A body that names something the code does not have, or misses something it has, is a
build error: the page is then wrong. The row builders are plain functions, which
``tests/test_docs.py`` calls too.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "trusted_identity"
#: The CLI's help, wrapped at one width whatever the terminal building the docs.
HELP_COLUMNS = "88"


#: What names an entry of each directive's body.
SETTING_KEY = r"[A-Z][A-Z0-9_]*"
CHECK_KEY = r"trusted_identity\.[EW]\d{3}"
CODE_KEY = r"[a-z_]+"


class ReferenceError(ValueError):
    """The page and the code disagree (an entry for nothing, or nothing for an entry)."""


def setup_django() -> None:
    """Django configured just enough to import the app's models and command (the docs
    need no database). A process that has settings already keeps them."""
    import django
    from django.conf import settings

    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        settings.configure(
            INSTALLED_APPS=[
                "django.contrib.admin",
                "django.contrib.auth",
                "django.contrib.contenttypes",
                "django.contrib.sessions",
                "django.contrib.messages",
                "trusted_identity",
            ],
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
            SECRET_KEY="docs-build-only",
            USE_TZ=True,
        )
    django.setup()


# ------------------------------------------------------------------ entries of a body


def parse_entries(lines: list[str], pattern: str) -> dict[str, str]:
    """``KEY: text`` entries, a continuation indented; keys match ``pattern``."""
    entries: dict[str, str] = {}
    key = None
    for line in lines:
        if not line.strip():
            continue
        match = re.fullmatch(rf"({pattern}):\s+(.*)", line)
        if match and not line[0].isspace():
            key = match.group(1)
            if key in entries:
                raise ReferenceError(f"{key} is described twice")
            entries[key] = match.group(2).strip()
        elif key is not None and line[0].isspace():
            entries[key] += " " + line.strip()
        else:
            raise ReferenceError(f"not an entry 'KEY: text' nor its continuation: {line!r}")
    return entries


def _compare(kind: str, described: set[str], actual: set[str]) -> None:
    problems = []
    if described - actual:
        extra = sorted(described - actual)
        problems.append(f"the page describes {kind} the code does not have: {extra}")
    if actual - described:
        problems.append(f"the page does not describe these {kind}: {sorted(actual - described)}")
    if problems:
        raise ReferenceError("; ".join(problems))


def cell(text: str) -> str:
    """Text for a Markdown table cell: pipes escaped, on one line."""
    return " ".join(text.replace("|", "\\|").split())


def plain(text: str) -> str:
    """Text from the code as Markdown shows it as written: ``<count>`` is no HTML tag."""
    return text.replace("<", "\\<")


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------ settings


def settings_rows(notes: dict[str, str]) -> list[list[str]]:
    """A row per setting: name, default, the values it takes, what it does."""
    from trusted_identity.conf import SETTINGS

    unknown = set(notes) - set(SETTINGS)
    if unknown:
        raise ReferenceError(f"notes for settings the code does not have: {sorted(unknown)}")
    rows = []
    for name, setting in SETTINGS.items():
        default = " or ".join(f"`{span}`" for span in setting.documented_default())
        what = plain(setting.doc)
        if not what.endswith("."):
            what += "."
        if name in notes:
            what += " " + notes[name]
        takes = plain(setting.kind.must_be)
        if setting.env:
            takes += f"; unset: the environment variable `{setting.env}`"
        if setting.check_id != "trusted_identity.E008":
            takes += f" (else `{setting.check_id}`)"
        rows.append([f"`{name}`", default, takes, what])
    return rows


def settings_markdown(rows: list[list[str]]) -> str:
    """A section per setting (its own anchor: ``settings.md#rate_limit``) with what it
    does, its default and the values it takes. Sections only: the directive ends its
    part of the page."""
    return "\n\n".join(
        f"### {name}\n\n{what}\n\n- **Default**: {default}\n- **Takes**: {takes}"
        for name, default, takes, what in rows
    )


# ------------------------------------------------------------------ system checks


def registered_checks() -> dict[str, tuple[str, str]]:
    """Every check id the app can report: ``{id: (level, when it runs)}``, read from
    ``checks.py`` (the registering decorator's tags) and the settings table."""
    from trusted_identity.conf import SETTINGS

    found: dict[str, tuple[str, str]] = {}
    tree = ast.parse((APP / "checks.py").read_text(encoding="utf-8"))
    for function in tree.body:
        if not isinstance(function, ast.FunctionDef):
            continue
        register = [
            d
            for d in function.decorator_list
            if isinstance(d, ast.Call) and getattr(d.func, "id", "") == "register"
        ]
        if not register:
            continue
        keywords = {k.arg: k.value for k in register[0].keywords}
        tags = {getattr(a, "attr", "") for a in register[0].args}
        deploy = isinstance(keywords.get("deploy"), ast.Constant) and keywords["deploy"].value
        when = "`check --deploy`" if deploy else "every `check`"
        if "database" in tags:
            when = "`check --database` and `migrate`"
        for node in ast.walk(function):
            if not (isinstance(node, ast.keyword) and node.arg == "id"):
                continue
            if isinstance(node.value, ast.Constant):
                found[node.value.value] = (_level(node.value.value), when)
            else:  # id=problem.setting.check_id: the settings table's own ids
                for setting in SETTINGS.values():
                    found[setting.check_id] = (_level(setting.check_id), when)
    return found


def _level(check_id: str) -> str:
    return {"E": "error", "W": "warning"}[check_id.rsplit(".", 1)[1][0]]


def check_rows(descriptions: dict[str, str]) -> list[list[str]]:
    checks = registered_checks()
    _compare("check ids", set(descriptions), set(checks))
    return [
        [f"`{check_id}`", checks[check_id][0], checks[check_id][1], text]
        for check_id, text in descriptions.items()
    ]


# ------------------------------------------------------------------ error codes


def http_error_codes() -> dict[str, int]:
    """Every error code the HTTP endpoints answer, with its status: the exceptions'
    (``code``, ``status``) and the codes the views answer themselves."""
    from trusted_identity import exceptions

    codes: dict[str, int] = {}
    pending = list(exceptions.TrustedIdentityError.__subclasses__())
    while pending:
        error = pending.pop()
        pending.extend(error.__subclasses__())
        if error.__module__ == exceptions.__name__:
            codes[error.code] = error.status
    views = (APP / "views.py").read_text(encoding="utf-8")
    calls = re.findall(r'error_response\(\s*"(\w+)",.*?,\s*(\d{3})\s*[,)]', views, re.S)
    for code, status in calls:
        codes[code] = int(status)
    return codes


#: Codes of the service layer that only the CLI reports (its one-line errors): the
#: HTTP endpoints never create users or spaces, nor name public keys.
CLI_ONLY_CODES = frozenset({"user_not_found", "already_exists", "key_not_found"})


def error_rows(descriptions: dict[str, str]) -> list[list[str]]:
    codes = {c: s for c, s in http_error_codes().items() if c not in CLI_ONLY_CODES}
    _compare("error codes", set(descriptions), set(codes))
    return [[str(codes[code]), f"`{code}`", text] for code, text in descriptions.items()]


# ------------------------------------------------------------------ the CLI


def cli_parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The command's parser and each sub-command's, as ``manage.py`` builds them."""
    from trusted_identity.management.commands.trusted_identity import Command

    parser = Command().create_parser("manage.py", "trusted_identity")
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return parser, dict(action.choices)


def cli_help() -> list[tuple[str, str, str]]:
    """``(sub-command, its one-line help, its --help)`` in the parser's order, after
    ``("", the command's help, its --help)`` for the command itself."""
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        parser, subparsers = cli_parsers()
        [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        summaries = {choice.dest: choice.help or "" for choice in action._choices_actions}
        return [("", parser.description or "", parser.format_help())] + [
            (name, summaries[name], sub.format_help()) for name, sub in subparsers.items()
        ]
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous


def cli_markdown() -> str:
    """The command's ``--help`` (which lists the sub-commands), then each sub-command's
    under its own heading, anchored by its name (``cli.md#prune``). Sections only: the
    directive ends its part of the page."""
    [(_, _, command), *subcommands] = cli_help()
    parts = [f"### The command and its global options\n\n```text\n{command.rstrip()}\n```"]
    for name, _summary, text in subcommands:
        parts.append(f"({name})=\n### `{name}`\n\n```text\n{text.rstrip()}\n```")
    return "\n\n".join(parts)


# ------------------------------------------------------------------ Sphinx


def setup(app: Any) -> dict[str, Any]:
    from docutils import nodes
    from docutils.statemachine import StringList
    from sphinx.util.docutils import SphinxDirective

    setup_django()

    class Generated(SphinxDirective):
        has_content = True

        def markdown(self) -> str:
            raise NotImplementedError

        def run(self) -> list[Any]:
            try:
                text = self.markdown()
            except ReferenceError as exc:
                raise self.error(f"{self.name}: {exc}") from None
            container = nodes.container()
            self.state.nested_parse(
                StringList(text.splitlines(), source=self.get_source_info()[0]),
                self.content_offset,
                container,
                match_titles=True,
            )
            return container.children

    class SettingsReference(Generated):
        def markdown(self) -> str:
            notes = parse_entries(list(self.content), SETTING_KEY)
            return settings_markdown(settings_rows(notes))

    class SystemChecks(Generated):
        def markdown(self) -> str:
            text = parse_entries(list(self.content), CHECK_KEY)
            return table(["id", "level", "run by", "when"], check_rows(text))

    class ErrorCodes(Generated):
        def markdown(self) -> str:
            text = parse_entries(list(self.content), CODE_KEY)
            return table(["status", "code", "when"], error_rows(text))

    class CliReference(Generated):
        has_content = False

        def markdown(self) -> str:
            return cli_markdown()

    app.add_directive("settings-reference", SettingsReference)
    app.add_directive("system-checks", SystemChecks)
    app.add_directive("error-codes", ErrorCodes)
    app.add_directive("cli-reference", CliReference)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
