"""Sphinx configuration of the documentation site (``make docs``).

Sphinx with MyST-Parser: the pages stay Markdown (readable on a forge and in the
sdist), and Sphinx checks every internal reference: with ``-n`` and ``-W``, a link to
a page or a heading anchor that does not exist fails the build. The reference pages
(CLI, settings, system checks, error codes) are generated from the code at build time
by the extension in ``_ext/``. Nothing here reaches the network: the theme (Furo) is
a pip package, and no intersphinx inventory is fetched.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path[:0] = [str(ROOT), str(DOCS / "_ext")]

from trusted_identity import __version__  # noqa: E402

project = "django-trusted-identity"
author = "The django-trusted-identity contributors"
copyright = "the django-trusted-identity contributors"
release = version = __version__

extensions = ["myst_parser", "ti_reference"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Every heading down to ### gets an anchor that links may name (`page.md#a-heading`);
# a link to an anchor that is not there is a warning, so an error under -W.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]
nitpicky = True
# Quotes stay as typed: settings, flags and JSON are quoted literally.
smartquotes = False
suppress_warnings: list[str] = []

html_theme = "furo"
html_title = f"trusted-identity {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
# The screenshots are images of the admin, shown as they are.
html_extra_path: list[str] = []

# Literal blocks without a language (the architecture's diagrams) are plain text.
highlight_language = "text"


def setup(app: object) -> None:
    """Crontab lines (```cron) highlighted as the shell commands they mostly are."""
    from pygments.lexers.shell import BashLexer

    app.add_lexer("cron", BashLexer)
