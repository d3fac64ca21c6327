"""Turns raw model output into text a WeChat customer may see."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_MD_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*", re.MULTILINE)
_MD_BULLET = re.compile(r"^\s*[-*+]\s+", re.MULTILINE)
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|`{1,3})(.+?)\1", re.DOTALL)
_MD_FENCE = re.compile(r"^```\w*\s*$", re.MULTILINE)
_BLANK_LINES = re.compile(r"\n{3,}")

OPEN, CLOSE = "<think>", "</think>"


def strip_think(text: str) -> str:
    """Removes DeepSeek-R1 reasoning, including the forms templates leave behind:
    a closing tag alone (the template opened the block) or an unclosed block (cut off)."""
    text = _THINK_BLOCK.sub("", text)
    lowered = text.lower()
    if CLOSE in lowered:
        text = text[lowered.rindex(CLOSE) + len(CLOSE) :]
        lowered = text.lower()
    if OPEN in lowered:
        text = text[: lowered.index(OPEN)]
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


Part = tuple[Literal["reasoning", "answer"], str]


class ThinkSplitter:
    """Separates streamed reasoning from the answer as the pieces arrive.

    ``opened`` says the prompt itself ended with ``<think>`` (DeepSeek-R1's template opens
    the block), so the output starts as reasoning and only its closing tag appears. A tag
    split across two pieces is held back until it is complete.
    """

    def __init__(self, opened: bool = False) -> None:
        self.state: Literal["start", "reasoning", "answer"] = "reasoning" if opened else "start"
        self._buf = ""
        #: A closing tag came after text already taken for the answer: that text was
        #: reasoning, and the answer starts again after the tag.
        self.answer_restarted = False
        #: Whitespace between a closing tag and the answer comes as pieces of its own.
        self._after_close = False

    def feed(self, piece: str) -> Iterator[Part]:
        self._buf += piece
        while self._buf:
            if self.state == "start":
                head = self._buf.lstrip()
                if head.lower().startswith(OPEN):
                    self._buf = head[len(OPEN) :]
                    self.state = "reasoning"
                    continue
                if OPEN.startswith(head.lower()):
                    return  # may still become "<think>"
                self.state = "answer"
                continue
            if self.state == "reasoning":
                at = self._buf.lower().find(CLOSE)
                if at >= 0:
                    if at:
                        yield "reasoning", self._buf[:at]
                    self._buf = self._buf[at + len(CLOSE) :].lstrip()
                    self.state = "answer"
                    self._after_close = True
                    continue
                keep = _partial_suffix(self._buf, CLOSE)
                if len(self._buf) > keep:
                    yield "reasoning", self._buf[: len(self._buf) - keep]
                    self._buf = self._buf[len(self._buf) - keep :]
                return
            if self._after_close:
                self._buf = self._buf.lstrip()
                if not self._buf:
                    return
                self._after_close = False
            # answer: a stray "</think>" means what came before was reasoning after all;
            # a late "<think>" starts reasoning that must not reach the customer.
            lowered = self._buf.lower()
            cut = min((i for i in (lowered.find(CLOSE), lowered.find(OPEN)) if i >= 0), default=-1)
            if cut >= 0:
                tag = CLOSE if lowered.startswith(CLOSE, cut) else OPEN
                if cut:
                    yield ("reasoning" if tag == CLOSE else "answer"), self._buf[:cut]
                if tag == CLOSE:
                    self.answer_restarted = True
                self._buf = self._buf[cut + len(tag) :]
                self.state = "answer" if tag == CLOSE else "reasoning"
                continue
            keep = max(_partial_suffix(self._buf, CLOSE), _partial_suffix(self._buf, OPEN))
            if len(self._buf) > keep:
                yield "answer", self._buf[: len(self._buf) - keep]
                self._buf = self._buf[len(self._buf) - keep :]
            return

    def flush(self) -> Iterator[Part]:
        """The held-back tail at the end of the output."""
        rest, self._buf = self._buf, ""
        if not rest:
            return
        if self.state == "reasoning":
            yield "reasoning", rest
        elif not OPEN.startswith(rest.strip().lower()):
            yield "answer", rest


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that is a beginning of ``tag``."""
    lowered = text.lower()
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(lowered[-n:]):
            return n
    return 0
