"""The ``chimein`` command line: one module per command group, each command a thin call into the library.

    chimein validate data/*.jsonl
    chimein import whatsapp "WhatsApp Chat with Family.txt" -o family.jsonl --pseudonymize
    chimein label mine.jsonl -o mine.labels.jsonl
    chimein template-tokens --model smollm2-135m-instruct
    chimein train --preset smollm2-135m
    chimein chat                                  # the shipped assistant (llamacpp:default)
    chimein decide < requests.jsonl
    chimein eval data/valid.jsonl --model silent,mention,baseline,default

This package only assembles the commands (and is the console entry point); what they share is in
:mod:`chimein.cli.options`.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import typer
from typer.core import TyperGroup

from chimein.cli import data, export, importers, label, matrix, models, run, serve, train
from chimein.cli import eval as evaluation
from chimein.cli.options import user_errors

# Deprecation notices from inside transformers/peft say nothing a chimein user can act on.
warnings.filterwarnings("ignore", category=FutureWarning)

COMMANDS = [
    ("validate", data.validate),
    ("label", label.label),
    ("template-tokens", data.template_tokens),
    ("train", train.train),
    ("chat", run.chat),
    ("decide", run.decide),
    ("eval", evaluation.eval_),
    ("generate", data.generate),
    ("import", importers.import_),
    ("export", export.export),
    ("serve", serve.serve),
    ("matrix", matrix.matrix),
    ("models", models.models),
]


# Recent typers vendor click, older ones use it: take click's error classes from typer's own BadParameter.
USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
CLICK_EXCEPTION = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class Commands(TyperGroup):
    """The command group. A usage error (an unknown flag, a value out of range) ends like every other error:
    one ``error: ...`` line on stderr and exit code 2, not click's usage text and a boxed message."""

    def main(
        self,
        args: Any = None,
        prog_name: Any = None,
        complete_var: Any = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except USAGE_ERROR as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # plain `chimein`: the help, as before
                e.show()
            else:
                where = f" (see {e.ctx.command_path} --help)" if e.ctx is not None else ""
                typer.echo(f"error: {e.format_message()}{where}", err=True)
            sys.exit(e.exit_code)
        except CLICK_EXCEPTION as e:
            typer.echo(f"error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except typer.Abort:
            typer.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=Commands,
    help="chimein: a group-chat assistant that knows when to stay silent.",
    no_args_is_help=True,
    add_completion=False,
)
for _name, _command in COMMANDS:
    app.command(_name)(user_errors(_command))
