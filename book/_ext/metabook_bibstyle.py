"""The bibliography's style: entries labelled as the text cites them ("Finn et al., 2017"),
sorted by author and year, with their DOI, arXiv or web link (pybtex's ``unsrt`` formats
those fields as links). Registered as the pybtex style ``metabook``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting.author_year_title import SortingStyle


def _surname(person) -> str:  # noqa: ANN001 (a pybtex Person)
    return " ".join(person.rich_last_names and [str(n) for n in person.rich_last_names] or [])


def author_year(entry) -> str:  # noqa: ANN001 (a pybtex Entry)
    """ "Lake et al., 2015", "Ravi and Larochelle, 2017", "Schmidhuber, 1987"."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_surname(p) for p in people]
    if len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabels(BaseLabelStyle):
    """Author-year labels; two works with the same label get 2020a, 2020b."""

    def format_labels(self, sorted_entries: Iterable) -> Iterator[str]:
        entries = list(sorted_entries)
        labels = [author_year(e) for e in entries]
        counts, seen = Counter(labels), Counter()
        for label in labels:
            if counts[label] > 1:
                seen[label] += 1
                yield label + "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
            else:
                yield label


class AuthorYearStyle(UnsrtStyle):
    default_label_style = "metabook-author-year"
    default_sorting_style = "author_year_title"


def setup(app):  # noqa: ANN001, ANN201 (Sphinx's extension entry point)
    register_plugin("pybtex.style.labels", "metabook-author-year", AuthorYearLabels)
    register_plugin("pybtex.style.formatting", "metabook", AuthorYearStyle)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


__all__ = ["AuthorYearLabels", "AuthorYearStyle", "SortingStyle", "author_year"]
