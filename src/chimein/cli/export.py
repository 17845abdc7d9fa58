"""`chimein export`: the fine-tuned assistant as GGUF files for llama.cpp and Ollama (:mod:`chimein.export`)."""

from __future__ import annotations

from pathlib import Path

import typer

from chimein.cli.options import fail


def export(
    model: str = typer.Option(
        "default", "--model", "-m", help="a chimein adapter: default, or a training run directory"
    ),
    out: Path = typer.Option(Path("exported"), help="output directory"),
    copy_base: bool = typer.Option(
        True, help="copy the base GGUF into OUT (else the Modelfile points at the installed one)"
    ),
) -> None:
    """Write the base GGUF, a LoRA adapter GGUF and an Ollama Modelfile."""
    from chimein.export import ExportError
    from chimein.export import export as run_export

    try:
        result = run_export(model, out, copy_base=copy_base)
    except ExportError as e:
        fail(str(e))
    typer.echo(f"base:      {result.base}\nadapter:   {result.adapter}\nModelfile: {result.modelfile}")
    typer.echo(f"try: python -m llama_cpp.server --model {result.base} --lora_path {result.adapter}")
    typer.echo(f"     ollama create chimein -f {result.modelfile}")
