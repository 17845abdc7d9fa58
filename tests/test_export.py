"""GGUF export of the shipped adapter: llama.cpp must decide like the PyTorch model."""

import pytest

from chimein.models import DEFAULT_ADAPTER_DIR

pytestmark = pytest.mark.skipif(not (DEFAULT_ADAPTER_DIR / "adapter_config.json").exists(), reason="no default adapter shipped yet")


def test_adapter_gguf_has_llama_cpp_metadata(tmp_path):
    import gguf

    from chimein.export import export

    out = export("default", tmp_path, copy_base=False)
    reader = gguf.GGUFReader(str(out.adapter))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() > 0
    names = {t.name for t in reader.tensors}
    assert any(n.endswith("attn_q.weight.lora_a") for n in names) and any(n.endswith("ffn_down.weight.lora_b") for n in names)
    assert "ADAPTER" in out.modelfile.read_text()
