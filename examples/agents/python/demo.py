"""The demo agent's "intelligence", shared by both services: a word-count tool and an answer
streamed in a few pieces. A real agent calls its model and tools here."""

from __future__ import annotations


def word_count(text: str) -> dict:
    """The demo's tool."""
    return {"words": len(text.split())}


def answer_chunks(text: str, words: int) -> list[str]:
    """The demo's answer, in the pieces it is streamed in."""
    quoted = text if len(text) <= 60 else text[:57] + "..."
    return [
        "You wrote ",
        f"{words} word{'s' if words != 1 else ''}",
        f': "{quoted}"',
        ". Thanks for trying agentwire!",
    ]
