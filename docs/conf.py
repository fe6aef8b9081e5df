"""Sphinx configuration for the trio-actors documentation.

Build it with ``make docs`` (warnings are errors). The intersphinx inventories of Python's and trio's documentation
are committed under ``_inventories/`` so that a build needs no network.
"""

from __future__ import annotations

import importlib.metadata
import pathlib
import sys

from docutils.nodes import Element
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

project = "trio-actors"
author = "the trio-actors authors"
copyright = "the trio-actors authors"
release = version = importlib.metadata.version("trio-actors")

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.graphviz",
    "sphinx.ext.intersphinx",
]

root_doc = "index"
exclude_patterns = ["_build", "_inventories"]
templates_path: list[str] = []
html_static_path = ["_static"]
html_theme = "furo"
html_title = "trio-actors"
pygments_style = "default"
pygments_dark_style = "monokai"
default_role = "py:obj"
highlight_language = "none"  # a bare ``::`` block is plain text; Python is always a ``code-block:: python``

# -- autodoc ----------------------------------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True}
autoclass_content = "class"

# -- intersphinx ------------------------------------------------------------------------------------------------
# Local copies of the inventories, so that the build is offline and reproducible: _inventories/README.txt
# says how they were made.
_INVENTORIES = pathlib.Path(__file__).resolve().parent / "_inventories"
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", str(_INVENTORIES / "python.inv")),
    "trio": ("https://trio.readthedocs.io/en/stable", str(_INVENTORIES / "trio.inv")),
}

# -- graphviz ---------------------------------------------------------------------------------------------------
graphviz_output_format = "svg"
graphviz_dot_args = ["-Gfontname=sans-serif", "-Nfontname=sans-serif", "-Efontname=sans-serif"]

# -- references -------------------------------------------------------------------------------------------------
# Every cross-reference must resolve (``make docs`` turns the warning into an error), except the engine's private
# names that signatures and docstrings mention: those are named by the patterns below.
nitpicky = True
nitpick_ignore_regex = [
    ("py:.*", r"(runtime|actors)(\.testing)?\._.*"),  # private modules and classes
    ("py:.*", r"[A-Z]"),  # type variables (T, F)
    ("py:.*", r"_?(Owner|Target|Correlations|Cell|LifecycleKind|Routing|ROUTINGS|default_decider)"),
    ("py:attr", r"cause|reason|node"),  # instance attributes named in their own class's docstring
    ("py:mod", r"pytest"),
    ("py:meth", r"runtime\.Topology\..*"),  # the router's internal topology
]


def _public_name(app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: Element) -> Element | None:
    """Resolve ``runtime.X`` and ``runtime._module.X`` to the public ``actors.X`` where there is one.

    The classes are defined in ``runtime`` and re-exported by ``actors``: docstrings and signatures name them by
    where they are defined, the reference documents them where applications import them.
    """
    target: str = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith(("runtime.", "actors.")):
        return None
    parts = target.split(".")[1:]
    while parts and parts[0].startswith("_"):
        parts = parts[1:]  # a private module: runtime._cell.Cell -> Cell
    if not parts:
        return None
    domain = env.get_domain("py")
    for module in ("actors", "actors.testing", "runtime"):
        found = domain.resolve_xref(env, node.get("refdoc", ""), app.builder, node.get("reftype", ""),
                                    ".".join([module, *parts]), node, contnode)
        if found is not None:
            return found
    return None


def setup(app: Sphinx) -> None:
    app.connect("missing-reference", _public_name)
