"""Connectors: the assistant in other chat systems, each a transport over the room engine (:mod:`chimein.rooms`).
``matrix.py``: a Matrix bot (needs ``pip install 'chimein[matrix]'``)."""
