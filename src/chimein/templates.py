"""Built-in chat templates, for models that have none (Gemma-3-270m base) or whose template is unusable.

Each template is Jinja source in the Hugging Face ``chat_template`` dialect, rendered by
``tokenizer.apply_chat_template(..., chat_template=SOURCE)``. Every one of them is *prefix preserving*:
rendering the first k messages (with the generation prompt when the next one is the assistant's) gives a
prefix of rendering all of them. Assistant-only masking and per-room cache reuse rely on that.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinTemplate:
    name: str
    source: str
    end_of_turn: str  # what closes an assistant turn; for eos_token templates it depends on the tokenizer
    markers: tuple[str, ...]  # structural strings a user must not be able to type into the prompt


CHATML = BuiltinTemplate(
    name="chatml",
    source=(
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    end_of_turn="<|im_end|>",
    markers=("<|im_start|>", "<|im_end|>"),
)

ZEPHYR = BuiltinTemplate(
    name="zephyr",
    source=(
        "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
        "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    ),
    end_of_turn="</s>",
    markers=("<|user|>", "<|assistant|>", "<|system|>", "</s>", "<s>"),
)

LLAMA_2 = BuiltinTemplate(
    name="llama-2",
    source=(
        "{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token }}[INST] {{ message['content'] }} [/INST]"
        "{% else %} {{ message['content'] }} {{ eos_token }}{% endif %}{% endfor %}"
    ),
    end_of_turn="</s>",
    markers=("[INST]", "[/INST]", "</s>", "<s>", "<<SYS>>", "<</SYS>>"),
)

OPENCHAT = BuiltinTemplate(
    name="openchat",
    source=(
        "{{ bos_token }}{% for message in messages %}"
        "{{ 'GPT4 Correct ' + ('User' if message['role'] == 'user' else 'Assistant') + ': ' + message['content'] + '<|end_of_turn|>' }}"
        "{% endfor %}{% if add_generation_prompt %}GPT4 Correct Assistant:{% endif %}"
    ),
    end_of_turn="<|end_of_turn|>",
    markers=("<|end_of_turn|>", "GPT4 Correct User:", "GPT4 Correct Assistant:", "<s>", "</s>"),
)

GEMMA = BuiltinTemplate(
    name="gemma",
    source=(
        "{{ bos_token }}{% for message in messages %}<start_of_turn>{{ 'model' if message['role'] == 'assistant' else 'user' }}\n"
        "{{ message['content'] }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
    ),
    end_of_turn="<end_of_turn>",
    markers=("<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>"),
)

BUILTIN_TEMPLATES: dict[str, BuiltinTemplate] = {t.name: t for t in (CHATML, ZEPHYR, LLAMA_2, OPENCHAT, GEMMA)}


def get_builtin_template(name: str) -> BuiltinTemplate:
    try:
        return BUILTIN_TEMPLATES[name]
    except KeyError:
        raise ValueError(
            f"unknown chat template {name!r}; built-in templates: {', '.join(BUILTIN_TEMPLATES)}"
        ) from None
