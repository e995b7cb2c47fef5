"""Markdown as GitHub renders a comment: CommonMark with tables and strikethrough
(markdown-it-py), raw HTML allowed as GitHub allows it (`<details>`, `<summary>`, `<sub>`),
then sanitised by nh3 (ammonia): no script, no event handler, no style, and links that
cannot be javascript:. labci's comments are written by labci, but they quote what a pull
request controls (branch names, metric names), so the page never trusts them."""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

# GitHub's allowed elements that comments use; anything else is dropped (its text kept).
TAGS = {
    "a", "b", "blockquote", "br", "code", "del", "details", "div", "em", "h1", "h2", "h3",
    "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "strong",
    "sub", "summary", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "td": {"align", "style"},  # markdown-it aligns columns with style="text-align:…"
    "th": {"align", "style"},
    "details": {"open"},
    "ol": {"start"},
}

_PARSER = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def render_markdown(text: str) -> Markup:
    html = _PARSER.render(text)
    cleaned = nh3.clean(
        html,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener noreferrer",
        filter_style_properties={"text-align"},
    )
    return Markup(cleaned)  # noqa: S704 — sanitised above, by nh3
