"""chimein: a lightweight group-chat assistant that knows when to stay silent.

The pipeline, one module each: data -> format -> train -> assistant (runtime) -> interfaces -> eval.
Importing chimein is light: torch, transformers and llama_cpp load only when a model is used.
"""

from chimein.data import Conversation, Message, load_conversations, read_conversations, write_conversations

__all__ = ["Conversation", "Message", "load_conversations", "read_conversations", "write_conversations"]
__version__ = "0.1.0"
