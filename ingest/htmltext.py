"""HTML to markdown-like text (headings, lists, ``<pre>`` kept) by a forward-only
scanner, linear in its input."""

from __future__ import annotations

import html
import re
from collections import Counter

# A forward-only scanner instead of html.parser, which is quadratic on floods of
# "<!--", "<a \"", "</" and long runs of spaces, and raises AssertionError on
# "<![<![". Every search below either moves the position forward or, through a
# remembered "no match after here", ends the scan: the work is linear.

_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_BLOCK_TAGS = {"p", "div", "section", "article", "header", "footer", "main", "table", "tr", "ul", "ol", "blockquote", "hr", "nav", "aside", "figure", "dl", "dt", "dd"}
_HIDDEN_TAGS = {"head", "noscript", "svg", "template"}  # content is not text
_RAW_TAGS = {"script", "style"}  # content is not markup either: skipped to the end tag
_TAG_NAME = re.compile(r"[A-Za-z][^\s/>]*")
_ATTR_STOP = re.compile(r"[>=]")
_ATTR_SPACE = re.compile(r"[ \t\n\f]*")
_SPACE_RUN = re.compile(r"\s+")
# html.unescape raises ValueError past int()'s 4,300 digits; such code points do not exist.
_HUGE_CHARREF = re.compile(r"&#(?:[xX]0*[0-9a-fA-F]{7,}|0*[0-9]{8,});?")


def _unescape(raw: str) -> str:
    return html.unescape(_HUGE_CHARREF.sub("\ufffd", raw)) if "&" in raw else raw


class _Finder:
    """The next match at or after a position, remembered: the scanner only moves
    forward, so each stretch of text is searched once for each pattern."""

    def __init__(self, text: str, pattern: str) -> None:
        self.text, self.rx = text, re.compile(pattern, re.I)
        self.start, self.found = 0, None  # no match in text[start:found]; -1: none after start

    def __call__(self, pos: int) -> int:
        if self.found is None or pos < self.start or (self.found != -1 and pos > self.found):
            m = self.rx.search(self.text, pos)
            self.start, self.found = pos, (m.start() if m else -1)
        return self.found


class _TextWriter:
    """Text as a reader sees it: spaces collapse, none at a line's ends, at most one
    blank line in a row; ``<pre>`` text is kept as it is. Done while writing:
    regexes over the joined text (``[ \\t]+\\n``) were quadratic on runs of spaces."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pending = 0  # line breaks to write before the next text
        self.trim = True  # drop the next text's leading space
        self.last_pre = False

    def brk(self, lines: int) -> None:
        self.pending = max(self.pending, lines)

    def mark(self, markup: str) -> None:
        self._flush()
        self.parts.append(markup)
        self.trim, self.last_pre = True, False

    def text(self, s: str, pre: bool = False) -> None:
        if not pre and (self.trim or self.pending):
            s = s.lstrip(" ")
        if not s:
            return
        self._flush()
        self.parts.append(s)
        self.trim, self.last_pre = (not pre and s.endswith(" ")), pre

    def close_fence(self) -> None:
        self._flush()
        self.mark("```" if self.parts and self.parts[-1].endswith("\n") else "\n```")
        self.brk(2)

    def _flush(self) -> None:
        if self.pending and self.parts:
            if not self.last_pre:
                self.parts[-1] = self.parts[-1].rstrip(" ")
            self.parts.append("\n" * self.pending)
        self.pending = 0

    def value(self) -> str:
        return "".join(self.parts).strip() + "\n"


class _HtmlScanner:
    def __init__(self, src: str) -> None:
        self.src, self.out = src, _TextWriter()
        self.gt, self.comment_end, self.cdata_end = _Finder(src, ">"), _Finder(src, "-->"), _Finder(src, r"\]\]>")
        self.closers: dict[str, _Finder] = {}
        self.title: str | None = None
        self.pre = 0
        self.hidden: Counter[str] = Counter()  # open tags whose content is not text
        self.hidden_first, self.hidden_chars = "", 0
        self.notices: list[str] = []

    def run(self) -> tuple[str, str | None, list[str]]:
        src, pos = self.src, 0
        while pos < len(src):
            lt = src.find("<", pos)
            if lt < 0:
                self.data(src[pos:])
                break
            self.data(src[pos:lt])
            pos = self.markup(lt)
            if pos < 0:  # no tag can end after lt: the rest is text
                self.data(src[lt:])
                break
        if self.hidden.total():
            self.notices.append(f"<{self.hidden_first}> is never closed: the {self.hidden_chars:,} characters of text after it were dropped with it")
        return self.out.value(), self.title, self.notices

    def closer(self, name: str) -> _Finder:
        if name not in self.closers:
            self.closers[name] = _Finder(self.src, rf"</{name}(?=[\s/>])")
        return self.closers[name]

    def skip_to_gt(self, pos: int) -> int:
        gt = self.gt(pos)
        return gt + 1 if gt >= 0 else -1

    def markup(self, lt: int) -> int:
        """Handle the markup at ``lt``; returns where the text goes on, or -1."""
        src, nxt = self.src, self.src[lt + 1 : lt + 2]
        if nxt.isascii() and nxt.isalpha():
            return self.start_tag(lt)
        if nxt == "/":
            m = _TAG_NAME.match(src, lt + 2)
            end = self.skip_to_gt(m.end() if m else lt + 2)
            if m and end >= 0:
                self.end_tag(m.group().lower())
            return end
        if src.startswith("<!--", lt):
            for empty in ("<!-->", "<!--->"):
                if src.startswith(empty, lt):
                    return lt + len(empty)
            end = self.comment_end(lt + 4)
            if end < 0:  # unclosed: a browser would hide the rest of the note; keep it as text
                self.data("<!--")
                return lt + 4
            return end + 3
        if src.startswith("<![CDATA[", lt) and (end := self.cdata_end(lt + 9)) >= 0:
            self.data(src[lt + 9 : end], cdata=True)
            return end + 3
        if nxt in ("!", "?"):
            return self.skip_to_gt(lt + 2)
        self.data("<")
        return lt + 1

    def start_tag(self, lt: int) -> int:
        m = _TAG_NAME.match(self.src, lt + 1)
        end = self.tag_end(m.end())
        if end < 0:
            self.notices.append(f"the tag at offset {lt:,} is never closed (no '>'): the {len(self.src) - lt:,} characters from it on are kept as plain text")
            return -1
        name = m.group().lower()
        if name in _RAW_TAGS:
            close = self.closer(name)(end)
            if close < 0:
                self.notices.append(f"<{name}> at offset {lt:,} is never closed: the {len(self.src) - end:,} characters after it were dropped with it")
                return len(self.src)
            return close
        if name == "title" and self.hidden.total() == self.hidden["head"] and (close := self.closer("title")(end)) >= 0:
            self.title = self.title or " ".join(_unescape(self.src[end:close]).split()) or None
            return close
        self.start(name)
        return end + 1 if name == "pre" and self.src.startswith("\n", end) else end

    def tag_end(self, i: int) -> int:
        """Just past the '>' that ends a start tag ('>' inside a quoted value does not), or -1."""
        src = self.src
        while m := _ATTR_STOP.search(src, i):
            if m.group() == ">":
                return m.end()
            i = _ATTR_SPACE.match(src, m.end()).end()
            if src[i : i + 1] in ('"', "'"):
                close = src.find(src[i], i + 1)
                if close < 0:
                    return -1
                i = close + 1
        return -1

    def start(self, name: str) -> None:
        out = self.out
        if name in _HIDDEN_TAGS:
            if not self.hidden.total():
                self.hidden_first, self.hidden_chars = name, 0
            self.hidden[name] += 1
        elif name == "body":
            self.hidden.pop("head", None)  # </head> is optional
        elif self.hidden.total():
            return
        elif name in _HEADINGS:
            out.brk(2)
            out.mark("#" * _HEADINGS[name] + " ")
        elif name == "li":
            out.brk(1)
            out.mark("- ")
        elif name == "pre":
            self.pre += 1
            out.brk(2)
            out.mark("```\n")
        elif name == "br":
            out.brk(1)
        elif name in _BLOCK_TAGS:
            out.brk(2)

    def end_tag(self, name: str) -> None:
        if self.hidden[name] and name in _HIDDEN_TAGS:
            self.hidden[name] -= 1
            self.hidden += Counter()  # drop zero counts
        elif self.hidden.total():
            return
        elif name == "pre" and self.pre:
            self.pre -= 1
            self.out.close_fence()
        elif name in _HEADINGS or name in _BLOCK_TAGS:
            self.out.brk(2)

    def data(self, raw: str, cdata: bool = False) -> None:
        if not raw:
            return
        if self.hidden.total():
            self.hidden_chars += len(raw)
        elif self.pre:
            self.out.text(raw if cdata else _unescape(raw), pre=True)
        else:
            self.out.text(_SPACE_RUN.sub(" ", raw if cdata else _unescape(raw)))


def html_to_text(text: str, notices: list[str]) -> tuple[str, str | None]:
    body, title, found = _HtmlScanner(text).run()
    notices += found
    return body, title
