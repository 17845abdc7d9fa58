"""The ``chimein`` command line: one module per command group, each command a thin call into the library.

    chimein validate data/*.jsonl
    chimein template-tokens --model smollm2-135m-instruct
    chimein train --preset smollm2-135m
    chimein chat                                  # the shipped assistant (llamacpp:default)
    chimein decide < requests.jsonl
    chimein eval data/valid.jsonl --compare silent,mention,baseline,default

This package only assembles the commands (and is the console entry point); what they share is in
:mod:`chimein.cli.options`.
"""

from __future__ import annotations

import warnings

import typer

from chimein.cli import data, export, matrix, models, run, serve, train
from chimein.cli import eval as evaluation
from chimein.cli.options import user_errors

# Deprecation notices from inside transformers/peft say nothing a chimein user can act on.
warnings.filterwarnings("ignore", category=FutureWarning)

COMMANDS = [
    ("validate", data.validate),
    ("template-tokens", data.template_tokens),
    ("train", train.train),
    ("chat", run.chat),
    ("decide", run.decide),
    ("eval", evaluation.eval_),
    ("generate", data.generate),
    ("export", export.export),
    ("serve", serve.serve),
    ("matrix", matrix.matrix),
    ("models", models.models),
]

app = typer.Typer(help="chimein: a group-chat assistant that knows when to stay silent.", no_args_is_help=True, add_completion=False)
for _name, _command in COMMANDS:
    app.command(_name)(user_errors(_command))
