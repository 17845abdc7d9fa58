"""GGUF export of the shipped adapter: llama.cpp must decide like the PyTorch model (and runs it by default)."""

import pytest

from chimein.markers import adapter_threshold
from chimein.export import export
from chimein.models import DEFAULT_ADAPTER_DIR

pytestmark = pytest.mark.skipif(
    not (DEFAULT_ADAPTER_DIR / "adapter_config.json").exists(), reason="no default adapter shipped yet"
)


def test_adapter_gguf_has_llama_cpp_metadata(tmp_path):
    import gguf

    out = export("default", tmp_path, copy_base=False)
    reader = gguf.GGUFReader(str(out.adapter))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() > 0
    names = {t.name for t in reader.tensors}
    assert any(n.endswith("attn_q.weight.lora_a") for n in names) and any(
        n.endswith("ffn_down.weight.lora_b") for n in names
    )
    assert "ADAPTER" in out.modelfile.read_text()


@pytest.mark.slow
def test_exported_gguf_decides_like_the_pytorch_model(tmp_path):
    """Round trip: the exported adapter on llama.cpp's quantized base agrees with PyTorch on >= 95% of turns."""
    from pathlib import Path

    from chimein.assistant.backends import hf, llamacpp
    from chimein.data import load_conversations
    from chimein.eval.run import decision_agreement, evaluate

    out = export("default", tmp_path, copy_base=False)
    convs = load_conversations(Path(__file__).resolve().parents[1] / "data" / "valid.jsonl")[:8]
    torch_records = evaluate(hf.load("default"), convs, decisions_only=True)
    llama_records = evaluate(llamacpp.load("default", adapter_gguf=str(out.adapter)), convs, decisions_only=True)
    assert sum(r.gold_speak for r in torch_records) >= 10  # the sample has real speaking turns to agree on
    assert decision_agreement({"torch": torch_records, "llama.cpp": llama_records})["torch vs llama.cpp"] >= 0.95
    # and the probabilities themselves are close, not just the thresholded decisions
    gaps = sorted(abs(a.p_speak - b.p_speak) for a, b in zip(torch_records, llama_records))
    assert gaps[len(gaps) // 2] < 0.05


def test_the_runtime_default_is_the_shipped_adapter_on_llama_cpp(monkeypatch):
    """`chimein decide` without --model: llama.cpp with the adapter, silent on chit-chat, answers a direct question."""
    import json

    from typer.testing import CliRunner

    import chimein.assistant as assistant
    from chimein.cli import app

    from chimein.assistant.backends.llamacpp import LlamaCppEngine

    loaded, real = [], assistant.get_backend
    monkeypatch.setattr(assistant, "get_backend", lambda name, **kw: loaded.append(real(name, **kw)) or loaded[-1])
    chat = [{"role": "user", "name": "Ana", "content": "pizza or sushi tonight?"}]
    asked = chat + [{"role": "user", "name": "Ben", "content": "bot, how many syllables does a haiku have?"}]
    result = CliRunner().invoke(
        app, ["decide"], input="".join(json.dumps({"messages": m}) + "\n" for m in (chat, asked))
    )
    assert result.exit_code == 0, result.output
    first, second = [json.loads(line) for line in result.output.splitlines()]
    assert isinstance(loaded[0].engine, LlamaCppEngine) and loaded[0].threshold == adapter_threshold(
        DEFAULT_ADAPTER_DIR
    )
    assert not first["speak"] and first["p_speak"] < 0.2
    assert second["speak"] and second["text"]
