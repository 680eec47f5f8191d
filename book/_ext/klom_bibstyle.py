"""Bibliography labels that name the authors: "[Georgiev et al. 2025]" instead of pybtex's
alpha labels ("[GIK+25]", "[ExecutableBCommunity20]"). Loaded by _config.yml
(``sphinx.local_extensions``); selected with ``bibtex_default_style: authoryear``."""

from __future__ import annotations

import re

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle


def _last_name(person) -> str:
    return re.sub(r"[{}\\]", "", " ".join(person.prelast_names + person.last_names)).strip()


class AuthorYearLabels(BaseLabelStyle):
    """``Name Year``, ``Name and Other Year`` or ``Name et al. Year``; a, b, ... where two
    entries would share a label."""

    def format_labels(self, sorted_entries):
        labels = [self.label(entry) for entry in sorted_entries]
        seen: dict[str, int] = {}
        for label in labels:
            seen[label] = seen.get(label, 0) + 1
        count: dict[str, int] = {}
        for label in labels:
            if seen[label] == 1:
                yield label
            else:
                count[label] = count.get(label, 0) + 1
                yield f"{label}{'abcdefghijklmnopqrstuvwxyz'[count[label] - 1]}"

    @staticmethod
    def label(entry) -> str:
        persons = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [_last_name(p) for p in persons]
        year = entry.fields.get("year", "")
        if not names:
            who = entry.fields.get("title", entry.key)[:20]
        elif len(names) == 1:
            who = names[0]
        elif len(names) == 2:
            who = f"{names[0]} and {names[1]}"
        else:
            who = f"{names[0]} et al."
        return f"{who} {year}".strip()


class AuthorYearStyle(UnsrtStyle):
    default_label_style = "authoryear"
    default_sorting_style = "author_year_title"


def setup(app):
    register_plugin("pybtex.style.labels", "authoryear", AuthorYearLabels)
    register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)
    return {"parallel_read_safe": True}
