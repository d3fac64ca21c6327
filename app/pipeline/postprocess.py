"""Turns raw model output into text a WeChat customer may see."""

from __future__ import annotations

import re

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_MD_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*", re.MULTILINE)
_MD_BULLET = re.compile(r"^\s*[-*+]\s+", re.MULTILINE)
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|`{1,3})(.+?)\1", re.DOTALL)
_MD_FENCE = re.compile(r"^```\w*\s*$", re.MULTILINE)
_BLANK_LINES = re.compile(r"\n{3,}")


def strip_think(text: str) -> str:
    """Removes DeepSeek-R1 reasoning, including the forms templates leave behind:
    a closing tag alone (the template opened the block) or an unclosed block (cut off)."""
    text = _THINK_BLOCK.sub("", text)
    lowered = text.lower()
    if "</think>" in lowered:
        text = text[lowered.rindex("</think>") + len("</think>") :]
        lowered = text.lower()
    if "<think>" in lowered:
        text = text[: lowered.index("<think>")]
    return text.strip()


def to_plain_text(text: str) -> str:
    """WeChat shows Markdown literally: keep the words, drop the markup."""
    text = _MD_FENCE.sub("", text)
    text = _MD_LINK.sub(r"\1 \2", text)
    text = _MD_HEADING.sub("", text)
    text = _MD_BULLET.sub("· ", text)
    text = _MD_EMPHASIS.sub(r"\2", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


def clean_answer(raw: str) -> str:
    return to_plain_text(strip_think(raw))
