"""Export a fine-tuned assistant for llama.cpp and Ollama: the base GGUF plus a LoRA adapter GGUF.

    chimein export --model default --out exported/
    # -> exported/base.gguf, exported/chimein-lora.gguf, exported/Modelfile
    ollama create chimein -f exported/Modelfile
    python -m llama_cpp.server --model exported/base.gguf --lora_path exported/chimein-lora.gguf

The adapter GGUF itself is written by :mod:`chimein.adapter_gguf`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from chimein.adapter_gguf import ExportError, write_adapter_gguf
from chimein.models import ResolvedModel, resolve_model

__all__ = ["ExportError", "Exported", "export", "write_adapter_gguf"]


def _base_gguf(resolved: ResolvedModel) -> Path:
    if not resolved.gguf_file:
        raise ExportError(
            f"{resolved.name}: GGUF export needs a base model that is a GGUF file (e.g. smollm2-135m-instruct)"
        )
    from chimein.assistant.backends.llamacpp import base_gguf_path  # llama.cpp only when exporting

    return base_gguf_path(resolved)  # the copy chimein itself runs (Q8_0 for a Q4_1 file: faster on CPUs)


CHATML_OLLAMA = """{{ range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""


@dataclass
class Exported:
    base: Path
    adapter: Path
    modelfile: Path


def export(model: str, out_dir: Path, copy_base: bool = True) -> Exported:
    """Write base GGUF, adapter GGUF and an Ollama Modelfile for a chimein adapter (``default`` or a run dir)."""
    resolved = resolve_model(model)
    if resolved.adapter is None:
        raise ExportError(f"{model} is not a chimein adapter: export takes 'default' or a training run directory")
    if resolved.template != "chatml":
        raise ExportError(
            "the Ollama Modelfile is written for ChatML models; use the adapter GGUF with your own template"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    base = _base_gguf(resolved)
    if copy_base:
        shutil.copyfile(base, out_dir / "base.gguf")
        base = out_dir / "base.gguf"
    adapter = out_dir / "chimein-lora.gguf"
    write_adapter_gguf(resolved.adapter, _base_gguf(resolved), adapter)
    modelfile = out_dir / "Modelfile"
    modelfile.write_text(
        f"FROM {base.resolve()}\nADAPTER {adapter.resolve()}\n"
        f'TEMPLATE """{CHATML_OLLAMA}"""\n'
        "PARAMETER stop <|im_end|>\nPARAMETER temperature 0\n"
        "# Send each user message as 'Name: text'; the reply is '(silence)' or '(response) ...'.\n"
    )
    return Exported(base, adapter, modelfile)
