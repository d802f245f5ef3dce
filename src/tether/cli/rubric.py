"""``tether rubric``: the five-question wireless rubric at the terminal.

Each question can be answered by an option (``--range``, ``--cadence``,
``--budget``, ``--power``, ``--security``); the command asks for the ones left
out, offering numbered answers and asking again after anything it cannot read.
With every option given it asks nothing, which is how scripts use it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.prompt import Prompt
from rich.table import Table
from rich.text import Text

from tether.advice.rubric import (
    QUESTIONS,
    Answer,
    Answers,
    InvalidAnswerError,
    Question,
    Recommendation,
    question,
    recommend,
)
from tether.cli.context import console

err_console = Console(stderr=True)


def _check(key: str) -> Callable[[str | None], str | None]:
    q = question(key)

    def check(value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return q.answer(value.strip().lower()).key
        except InvalidAnswerError as exc:
            raise typer.BadParameter(
                f"{value!r} is not an answer to question {q.number}; "
                f"valid answers: {', '.join(q.keys)}"
            ) from exc

    return check


def _help(key: str) -> str:
    q = question(key)
    return f"Question {q.number}: {q.text} One of: {', '.join(q.keys)}."


def _option(key: str) -> Any:
    return typer.Option(
        f"--{key}", callback=_check(key), help=_help(key), metavar="ANSWER", show_default=False
    )


def _ask(q: Question, out: Console) -> Answer:
    out.print()
    out.print(f"[bold]{q.number}. {escape(q.text)}[/]")
    out.print(f"[dim]{escape(q.why)}[/]")
    choices = Table.grid(padding=(0, 1))
    choices.add_column(justify="right", no_wrap=True, style="cyan")
    choices.add_column(ratio=1)
    for i, a in enumerate(q.answers, start=1):
        choices.add_row(f"  {i}", Text.assemble(a.label, " ", (f"({a.key})", "dim")))
    out.print(choices)
    last = len(q.answers)
    while True:
        try:
            typed = Prompt.ask(f"Answer (1-{last})", console=out)
        except EOFError:
            out.print(
                f"[red]No answer to question {q.number}:[/] input ended. "
                f"Pass --{q.key} to answer it without a prompt."
            )
            raise typer.Exit(1) from None
        chosen = q.choose(typed)
        if chosen is not None:
            return chosen
        out.print(
            f"[red]{escape(typed.strip())!r} is not one of the answers.[/] "
            f"Type a number from 1 to {last}, or one of: {', '.join(q.keys)}."
        )


def _show(rec: Recommendation) -> None:
    style = "bold green" if rec.fits else "bold yellow"
    head = Text(rec.radio.name, style=style)
    table = Table(box=box.SIMPLE, expand=True, header_style="bold")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("Question", no_wrap=True)
    table.add_column("Answer")
    table.add_column("Why", ratio=1)
    for r in rec.reasons:
        q = question(r.question)
        table.add_row(str(q.number), q.key, r.answer, r.text)
    title = "Recommendation" if rec.fits else "Recommendation, with conflicts"
    console.print(Panel(Group(head, table), title=title, title_align="left"))
    sections = (
        ("Trade-offs", rec.tradeoffs, ""),
        ("Security the buyer expects", rec.security, ""),
        ("Conflicts to renegotiate", rec.conflicts, "red"),
    )
    for heading, items, colour in sections:
        if not items:
            continue
        console.print(f"[bold {colour}]{heading}[/]" if colour else f"[bold]{heading}[/]")
        bullets = Table.grid(padding=(0, 1))
        bullets.add_column(no_wrap=True)
        bullets.add_column(ratio=1)
        for item in items:
            bullets.add_row("  -", item)
        console.print(bullets)


def rubric(
    range_: Annotated[str | None, _option("range")] = None,
    cadence: Annotated[str | None, _option("cadence")] = None,
    budget: Annotated[str | None, _option("budget")] = None,
    power: Annotated[str | None, _option("power")] = None,
    security: Annotated[str | None, _option("security")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Choose a radio with the five-question wireless rubric (asks what options leave out)."""
    given = {
        "range": range_,
        "cadence": cadence,
        "budget": budget,
        "power": power,
        "security": security,
    }
    asker = err_console if as_json else console
    if any(v is None for v in given.values()):
        asker.print("[bold]The wireless rubric[/]: five questions, answer by number or by name.")
    chosen: dict[str, str] = {}
    for q in QUESTIONS:
        value = given[q.key]
        chosen[q.key] = value if value is not None else _ask(q, asker).key
    rec = recommend(Answers(**chosen))
    if as_json:
        typer.echo(json.dumps(rec.as_dict(), indent=2, ensure_ascii=False))
    else:
        _show(rec)
