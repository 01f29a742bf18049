"""Strings from the store, shown as they are: never as Streamlit markdown, never as plotly's HTML.

Names, reasons and facts come from users and devices. Streamlit renders markdown (links, images, emphasis, colour
directives) in titles, captions, alerts and st.table cells; plotly reads <a>, <b>, <br> and <span> in labels and
hover text. Every such string goes through one of these on its way to the page."""
from __future__ import annotations

import html
import re

import pandas as pd

# Every ASCII punctuation that markdown, Streamlit's directives (:red[...], :material/...:) or LaTeX ($) give a meaning.
_MARKDOWN = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")


# The page turns bare URLs and e-mail addresses into links even in escaped text: an invisible word joiner inside
# "://", after "www" and after "@" keeps the text as it reads and leaves nothing to link.
_AUTOLINK = re.compile(r"(\\:)(?=\\/\\/)|(?<=www)(?=\\\.)|(?<=\\@)", re.IGNORECASE)
JOINER = "\u2060"


def md(value: object) -> str:
    """`value` as markdown that shows exactly its text: every punctuation backslash-escaped, on one line, and no
    URL left for the page to turn into a link."""
    escaped = _MARKDOWN.sub(r"\\\1", " ".join(str(value).split()))
    return _AUTOLINK.sub(lambda match: (match.group(1) or "") + JOINER, escaped)


def md_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame for st.table (which renders its cells and index as markdown), its text shown as it is."""
    def literal(value):
        return md(value) if isinstance(value, str) else value

    out = frame.map(literal)
    out.index = out.index.map(literal)
    out.columns = out.columns.map(literal)
    return out


def svg(value: object) -> str:
    """`value` for a plotly label or hover text: its angle brackets and ampersands as entities."""
    return html.escape(str(value), quote=False)
