"""A Sphinx directive, ``metabook-methods``, that renders metabook's registry of learners
(:data:`metabook.registry.LEARNERS`) as a table: the API page lists exactly the methods the
command line trains, with their defaults, and never goes out of date."""

from __future__ import annotations

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx import addnodes

HEADER = ("method", "learner", "family", "defaults")


def _cell(*children: nodes.Node) -> nodes.entry:
    paragraph = nodes.paragraph()
    paragraph.extend(children)
    entry = nodes.entry()
    entry += paragraph
    return entry


def _class_link(cls: type) -> nodes.Node:
    target = f"{cls.__module__}.{cls.__qualname__}"
    ref = addnodes.pending_xref(
        "", refdomain="py", reftype="class", reftarget=target, refexplicit=False, refwarn=True
    )
    ref += nodes.literal(cls.__name__, cls.__name__, classes=["xref", "py", "py-class"])
    return ref


class MethodsTable(Directive):
    """``metabook-methods``: one row per registry entry."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from metabook.registry import LEARNERS

        table = nodes.table(classes=["metabook-methods"])
        group = nodes.tgroup(cols=len(HEADER))
        table += group
        for width in (12, 40, 13, 35):
            group += nodes.colspec(colwidth=width)
        head, body = nodes.thead(), nodes.tbody()
        group += head
        group += body
        row = nodes.row()
        row.extend(_cell(nodes.Text(title)) for title in HEADER)
        head += row
        for name, method in LEARNERS.items():
            defaults = ", ".join(f"{k}={v}" for k, v in method.hyper.items()) or "none"
            backbone = (
                f"; Conv4 with {method.backbone.channels} channels, {method.backbone.norm} norm"
            )
            row = nodes.row()
            row += _cell(nodes.literal(name, name))
            row += _cell(_class_link(method.learner), nodes.Text(f": {method.summary}"))
            row += _cell(nodes.Text(method.family))
            row += _cell(nodes.Text(defaults + backbone))
            body += row
        return [table]


def setup(app):  # noqa: ANN001, ANN201 (Sphinx's extension entry point)
    app.add_directive("metabook-methods", MethodsTable)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
