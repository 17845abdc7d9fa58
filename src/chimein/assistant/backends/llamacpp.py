"""The llama.cpp engine (llama-cpp-python): the quantized GGUF base plus chimein's LoRA adapter GGUF.

One ``Llama`` object holds one live sequence; rooms take turns on it (the decision is ``local.py``'s).
When another room needs the model, the active room's KV cells are copied out (only the cells its tokens
use: ``llama_state_seq_get_data``) and copied back when it returns, so each room keeps its prefix cache.
The copies live within ``state_budget_mb``: past it the least recently used room's copy is dropped, and that
room is re-read from its messages when it speaks again (one prefill). The prompt is rendered by the same
:class:`ChatFormat` as in training, then tokenized by llama.cpp itself.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np

from chimein.assistant.backends.local import LocalBackend
from chimein.format import ChatFormat
from chimein.markers import adapter_threshold, common_prefix_len


@dataclass(eq=False)
class LlamaRoom:
    saved: Any = (
        None  # the room's KV cells (a ctypes byte array) while another room holds the model (None: evicted or new)
    )
    ids: list[int] = field(default_factory=list)  # the tokens those cells hold


def mapped_bytes(size: int, copy_of: Any = None) -> Any:
    """A ctypes byte array in an anonymous memory mapping of its own, returned to the OS the moment it is dropped.

    A room's copy is tens of MB and is dropped when the room leaves or is evicted. From malloc, glibc keeps
    freed blocks of that size in its heap (its mmap threshold rises to the largest block freed), so a server's
    memory would stay at its peak after the rooms empty.
    """
    array = (ctypes.c_uint8 * size).from_buffer(mmap.mmap(-1, max(size, 1)))  # the array keeps the mapping alive
    if copy_of is not None:
        ctypes.memmove(array, copy_of, size)
    return array


class LlamaCppEngine:
    def __init__(self, llm: Any, *, state_budget_mb: float = 256.0):
        self.llm = llm
        self.eos_id: int | None = llm.token_eos()
        self.n_ctx: int | None = llm.n_ctx()
        self._active: LlamaRoom | None = None
        self.state_budget_bytes = int(state_budget_mb * 2**20)
        # Rooms holding a copy, least recently used first. Weak: a room its caller dropped (a web room gone
        # to sleep, a finished session) frees its copy at once instead of waiting for the budget.
        self._saved: OrderedDict[int, weakref.ref[LlamaRoom]] = OrderedDict()
        self.evictions = 0

    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def set_threads(self, threads: int) -> None:
        """CPU threads for the next calls (reading a prompt and generating alike)."""
        if threads != self.llm.n_threads:
            llama_cpp.llama_set_n_threads(self.llm._ctx.ctx, threads, threads)
            self.llm.n_threads = self.llm.n_threads_batch = threads

    def detokenize(self, ids: list[int]) -> str:
        return self.llm.detokenize(ids, special=True).decode("utf-8", errors="replace")

    def new_state(self) -> LlamaRoom:
        return LlamaRoom()

    def _activate(self, room: LlamaRoom) -> None:
        if self._active is room:
            return
        ctx = self.llm._ctx.ctx
        if self._active is not None:
            self._save(self._active, ctx)
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
        self.llm.n_tokens = 0
        if room.saved is not None:
            if llama_cpp.llama_state_seq_set_data(ctx, room.saved, len(room.saved), 0) == len(room.saved):
                self.llm.input_ids[: len(room.ids)] = room.ids
                self.llm.n_tokens = len(room.ids)
            self._saved.pop(id(room), None)
            room.saved = None
        self._active = room

    def _save(self, room: LlamaRoom, ctx: Any) -> None:
        """Copy the active room's cells out, then drop the oldest copies past the budget."""
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buf = mapped_bytes(size)
        n = llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
        saved = buf if n == size else mapped_bytes(n, copy_of=buf)
        room.saved, room.ids = saved, list(self.llm.input_ids[: self.llm.n_tokens])
        key = id(room)
        self._saved[key] = weakref.ref(room, lambda _, key=key: self._saved.pop(key, None))
        while self.saved_bytes > self.state_budget_bytes and len(self._saved) > 1:
            _, oldest_ref = self._saved.popitem(last=False)
            if (oldest := oldest_ref()) is not None:
                oldest.saved, oldest.ids = None, []
                self.evictions += 1

    def residency(self, room: LlamaRoom) -> str:
        """Where the room's cache is: "active" (in the model), "saved" (a copy), or "evicted" (none: re-read)."""
        return "active" if self._active is room else ("saved" if room.saved is not None else "evicted")

    def cached_ids(self, room: LlamaRoom) -> list[int]:
        """The tokens the room's cells hold (live in the model, or saved)."""
        return list(self.llm.input_ids[: self.llm.n_tokens]) if self._active is room else list(room.ids)

    @property
    def saved_bytes(self) -> int:
        return sum(
            len(room.saved)
            for ref in list(self._saved.values())
            if (room := ref()) is not None and room.saved is not None
        )

    def advance(self, room: LlamaRoom, target: list[int]) -> tuple[np.ndarray, int]:
        self._activate(room)
        current = list(self.llm.input_ids[: self.llm.n_tokens])
        n = common_prefix_len(current, target)
        if n == len(target):
            n -= 1
        self.llm.n_tokens = n  # eval() drops the KV cache after n_tokens and appends from there
        self.llm.eval(target[n:])
        logits = np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.llm.n_vocab(),))
        return logits.copy(), len(target) - n


def load(
    name: str = "default",
    *,
    threshold: float | None = None,
    n_ctx: int = 4096,
    adapter_gguf: str | None = None,
    state_budget_mb: float = 256.0,
    threads: int = 1,
    **kwargs: Any,
) -> LocalBackend:
    """``name``: a chimein adapter (``default``, a run dir) or a registry/GGUF base model. ``threads``: CPU
    threads of the context, for a decision and for reading a prompt. One by default: on a shared machine more
    threads than free cores make each call wait for the slowest (bench/many_rooms.py measures it)."""
    if threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    from llama_cpp import Llama

    from chimein.models import load_tokenizer, resolve_model

    resolved = resolve_model(name)
    if not resolved.gguf_file:
        raise ValueError(f"{name}: the llama.cpp backend needs a GGUF base model")
    lora = adapter_gguf
    if resolved.adapter is not None and lora is None:
        lora = str(adapter_gguf_path(resolved))
    llm = Llama(
        model_path=str(base_gguf_path(resolved)),
        lora_path=lora,
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        logits_all=False,
        verbose=False,
    )
    fmt = ChatFormat.for_tokenizer(load_tokenizer(resolved), resolved.template)
    if threshold is None:
        threshold = adapter_threshold(resolved.adapter) if resolved.adapter is not None else 0.5
    kwargs.setdefault("name", f"llamacpp:{name}")
    return LocalBackend(LlamaCppEngine(llm, state_budget_mb=state_budget_mb), fmt, threshold=threshold, **kwargs)


def adapter_gguf_path(resolved: Any) -> Path:
    """The resolved model's adapter as a LoRA GGUF for llama.cpp (in-process or its server): converted once and
    kept next to the converted models."""
    from chimein.adapter_gguf import write_adapter_gguf
    from chimein.models import chimein_home

    path = chimein_home() / "gguf" / f"{Path(resolved.adapter).resolve().name}-{_mtime(resolved.adapter)}.gguf"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_adapter_gguf(Path(resolved.adapter), Path(resolved.source) / resolved.gguf_file, path)
    return path


# llama.cpp's x86 CPU kernels read a prompt about 1.5x faster from Q8_0 than from Q4_1 (bench/results/
# decision_latency.json), and a Q8_0 copy of Q4_1 weights changes them by far less than Q4_1's own rounding.
_FASTER_TYPE = {llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_1: ("Q8_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0)}


def base_gguf_path(resolved: Any) -> Path:
    """The base GGUF llama.cpp runs for a resolved model: its own file, or for a Q4_1 file (the shipped
    SmolLM2-135M) a Q8_0 copy made once and kept next to the converted models."""
    from chimein.models import chimein_home

    source = Path(resolved.source) / resolved.gguf_file
    file_type = _file_type(source, chimein_home() / "gguf" / "file-types.json")
    if file_type not in _FASTER_TYPE:
        return source
    name, ftype = _FASTER_TYPE[file_type]
    path = chimein_home() / "gguf" / f"{source.stem}.{name}-{source.stat().st_size}-{int(source.stat().st_mtime)}.gguf"
    if not path.exists():
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype, params.allow_requantize, params.nthread = ftype, True, os.cpu_count() or 1
        partial = path.with_suffix(f".{os.getpid()}.part")
        if llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params)) != 0:
            partial.unlink(missing_ok=True)
            raise RuntimeError(f"{source}: llama.cpp could not write its {name} copy to {path}")
        os.replace(partial, path)  # whole or not at all, even with two processes converting at once
    return path


def _file_type(gguf_path: Path, known: Path) -> int | None:
    """A GGUF's ``general.file_type``, remembered in ``known`` (gguf's reader takes seconds on a large
    vocabulary; the answer is kept per file, size and modification time)."""
    import json

    import gguf

    key = f"{gguf_path.resolve()}:{gguf_path.stat().st_size}:{int(gguf_path.stat().st_mtime)}"
    types = json.loads(known.read_text()) if known.exists() else {}
    if key not in types:
        field = gguf.GGUFReader(gguf_path).fields.get("general.file_type")
        types[key] = int(field.parts[field.data[0]][0]) if field is not None else None
        known.parent.mkdir(parents=True, exist_ok=True)
        partial = known.with_suffix(f".{os.getpid()}.part")
        partial.write_text(json.dumps(types, indent=1))
        os.replace(partial, known)
    return types[key]


def _mtime(path: Any) -> int:
    return int((Path(path) / "adapter_model.safetensors").stat().st_mtime)
