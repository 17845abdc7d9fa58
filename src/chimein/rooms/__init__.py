"""The room engine: one implementation of a chat room's assistant for every transport (web rooms, Matrix).

:class:`Room` (``room.py``) hears messages and bursts, decides through the room's policy, answers
``!chimein`` commands and says why it spoke or not; every room of a process shares one
:class:`ModelThread` (``model_thread.py``). Transports (``chimein.server.rooms``, ``chimein.connectors.matrix``)
only carry messages in and replies out, and store what they must.
"""

from chimein.rooms.model_thread import ModelBusy, ModelThread, lend_idle_cores, set_up_replier
from chimein.rooms.names import has_bidi_control, passes_for_assistant
from chimein.rooms.room import BEHIND_S, BUSY_REPLY, REPLIER_WAIT_S, Incoming, Outcome, Room, normalize_history

__all__ = [
    "BEHIND_S",
    "BUSY_REPLY",
    "Incoming",
    "ModelBusy",
    "ModelThread",
    "Outcome",
    "REPLIER_WAIT_S",
    "Room",
    "has_bidi_control",
    "lend_idle_cores",
    "normalize_history",
    "passes_for_assistant",
    "set_up_replier",
]
