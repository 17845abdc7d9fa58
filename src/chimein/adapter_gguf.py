"""LoRA adapter -> llama.cpp adapter GGUF: used by ``chimein export`` and by the llama.cpp runtime.

The adapter GGUF follows llama.cpp's format (src/llama-adapter.cpp): ``general.type = "adapter"``,
``adapter.type = "lora"``, ``adapter.lora.alpha`` (without it llama.cpp would scale by 1 instead of
alpha/r), and tensors ``<base tensor name>.lora_a`` / ``.lora_b`` shaped like PEFT's ``lora_A`` / ``lora_B``.
One subtlety: for Llama models the GGUF converter permutes the rows of ``attn_q`` and ``attn_k`` (rotary
layout), so the ``lora_b`` of those two must be permuted the same way, as convert_lora_to_gguf.py does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

# PEFT module name -> GGUF tensor name inside block N.
MODULE_TO_GGUF = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
PEFT_NAME = re.compile(r"layers\.(\d+)\.(.+)\.lora_([AB])\.weight$")


class ExportError(RuntimeError):
    """An adapter (or base model) that cannot be exported to llama.cpp."""


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py's LlamaModel.permute, applied to the output rows of a (rows, r) matrix."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_adapter_gguf(adapter_dir: Path, base_gguf: Path, out: Path) -> int:
    """Convert a PEFT LoRA adapter to llama.cpp's adapter GGUF; returns the number of tensors written."""
    import gguf
    from safetensors.numpy import load_file

    reader = gguf.GGUFReader(str(base_gguf))
    arch = reader.fields["general.architecture"].contents()
    n_head = int(reader.fields[f"{arch}.attention.head_count"].contents())
    n_head_kv = int(reader.fields[f"{arch}.attention.head_count_kv"].contents())
    base_names = {t.name for t in reader.tensors}
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))

    writer = gguf.GGUFWriter(str(out), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(config["lora_alpha"]))
    count = 0
    for name in sorted(weights):
        m = PEFT_NAME.search(name)
        if not m or m.group(2) not in MODULE_TO_GGUF:
            raise ExportError(
                f"cannot map adapter tensor {name!r} to a llama.cpp tensor (only attention/MLP LoRA is supported)"
            )
        layer, module, which = m.groups()
        target = f"blk.{layer}.{MODULE_TO_GGUF[module]}.weight"
        if target not in base_names:
            raise ExportError(f"{target} is not in {base_gguf.name}: wrong base model?")
        w = weights[name].astype(np.float32)
        if which == "B" and module == "self_attn.q_proj":
            w = _permute(w, n_head)
        elif which == "B" and module == "self_attn.k_proj":
            w = _permute(w, n_head_kv)
        writer.add_tensor(f"{target}.lora_{which.lower()}", w)
        count += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return count
