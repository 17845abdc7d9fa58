"""The command-line options for a new room's settings, shared by `chimein serve` and `chimein matrix`
(each room then changes its own with ``!chimein`` commands: :mod:`chimein.assistant.policy`)."""

from __future__ import annotations

from typing import Optional

import typer

from chimein.assistant.policy import PolicyError, RoomPolicy, parse_cooldown

ModeOpt = typer.Option("auto", help="a new room's mode: auto (the model decides), mention-only, quiet")
CooldownOpt = typer.Option(None, help="at most N unprompted messages per M minutes, e.g. 3/10m")
MinGapOpt = typer.Option(0, min=0, help="user messages between two unprompted interjections")
MaxReplyOpt = typer.Option(600, min=20, help="replies are cut to this many characters")
SettleOpt = typer.Option(1.5, min=0.0, help="seconds to wait for more messages before deciding once on the latest")
BotTurnsOpt = typer.Option(3, min=0, help="replies in a row to another bot before the assistant stops answering it")


def room_policy(mode: str, cooldown: Optional[str], min_gap: int, max_reply_chars: int, settle: float,
                bot_turns: int) -> RoomPolicy:
    """The room settings the options give; a bad value is a ValueError naming the flag."""
    try:
        return RoomPolicy(mode=mode, cooldown=parse_cooldown(cooldown) if cooldown else None,  # type: ignore[arg-type]
                          min_gap=min_gap, max_reply_chars=max_reply_chars, settle_s=settle, bot_turns=bot_turns)
    except PolicyError as e:
        raise ValueError(f"--mode / --cooldown: {e}") from None
