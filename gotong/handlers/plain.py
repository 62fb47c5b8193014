"""Text people typed, shown to others exactly as typed.

A household's street, a donor's organisation or a volunteer's reason is put into messages
that staff and volunteers read. WhatsApp turns `*bold*`, `_italic_`, `~strike~`,
`` `code` `` and a leading `>` (a quote) into formatting, so typed text could pass as
something the bot itself stressed, or hide part of itself. Each of those characters is
replaced by a look-alike that no chat app reads as formatting (∗ ˍ ∼ ˋ ›): the words read
the same on Telegram and WhatsApp, and none of the formatting is the typist's.
Control and format characters (bidi overrides, zero-width ones) are dropped here too, for
text stored before input was cleaned.
"""

from __future__ import annotations

from gotong.handlers.validators import clean_text

_LOOK_ALIKES = str.maketrans({"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"})


def as_typed(text: object) -> str:
    """`text` (typed by a person) safe to put into a message to someone else."""
    shown = clean_text(str(text or "")).translate(_LOOK_ALIKES)
    # A quote only starts a line; typed text is one line.
    return "\u203a" + shown[1:] if shown.startswith(">") else shown
