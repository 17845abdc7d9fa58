"""chimein.models: the registry's names, and the typed errors callers catch instead of reading messages."""

import pytest

from chimein.assistant import check_backend, get_backend
from chimein.models import ModelNotFound, UnknownModelError, resolve_model


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
