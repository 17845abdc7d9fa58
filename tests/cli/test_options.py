"""The shared model options: who writes the replies."""

import pytest

from chimein.cli.options import ModelOptions, replier_from_options


def test_reply_model_none_and_an_endpoint(monkeypatch):
    assert replier_from_options(ModelOptions(reply_model="none")) is None
    from chimein.assistant.backends.openai_http import OpenAIReplier

    assert isinstance(replier_from_options(ModelOptions(reply_base_url="http://127.0.0.1:9/v1", reply_model="big")), OpenAIReplier)
    assert replier_from_options(ModelOptions(), local_by_default=False) is None  # chimein eval compares explicitly


@pytest.mark.slow
def test_the_local_replier_writes_the_replies_by_default_when_installed():
    from chimein.assistant.replier import LocalReplier
    from chimein.models import replier_available

    if not replier_available():
        pytest.skip("the replier extra is not installed (make install installs it)")
    assert isinstance(replier_from_options(ModelOptions()), LocalReplier)
