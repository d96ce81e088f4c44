#!/usr/bin/env python3
"""Adds the collection's guides and a playbooks page to the pages antsibull-docs wrote (tools/docs.sh).

    tools/docs_pages.py COLLECTION_DIR RST_DIR

The guides stay where they are (COLLECTION_DIR/docs/*.md, read on GitHub and in the tarball); they are copied
under RST_DIR/guides/ for MyST. The playbooks page is made from the comment each playbook opens with, so it says
what the playbook file says. Both join the collection index's table of contents.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

# The order of the guides in the site's table of contents; any other guide follows, by name.
GUIDE_ORDER = ["runbook", "design", "restore", "encryption-and-sync", "roles", "security"]


def header_comment(playbook: Path) -> str:
    """The comment block a playbook opens with, as one paragraph of text."""
    lines = []
    for line in playbook.read_text(encoding="utf-8").splitlines():
        if line.strip() == "---" and not lines:
            continue
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(lines).strip()


def playbooks_page(collection: Path) -> str:
    parts = ["# Playbooks", "",
             "The runbook as playbooks: run each one by its name, `ansible-playbook devops.reddit_backup.NAME`, "
             "with the inventory variables the collection's README lists. What each one does, from the comment "
             "it opens with:", ""]
    for playbook in sorted((collection / "playbooks").glob("*.yml")):
        text = header_comment(playbook) or "(no description)"
        parts += ["## devops.reddit_backup.%s" % playbook.stem, "", text, ""]
    return "\n".join(parts)


# The labels of Ansible's own documentation that antsibull-docs pages refer to; intersphinx is off (offline), so
# they lead to the pages on docs.ansible.com from here.
ANSIBLE_REFERENCES = {
    "common_return_values": ("Return values common to all modules",
                             "https://docs.ansible.com/ansible/latest/reference_appendices/common_return_values.html"),
    "ansible_configuration_settings": ("Ansible configuration settings",
                                       "https://docs.ansible.com/ansible/latest/reference_appendices/config.html"),
}


def ansible_references_page() -> str:
    parts = [":orphan:", "", "Ansible's own documentation", "===========================", ""]
    for label, (title, url) in ANSIBLE_REFERENCES.items():
        parts += [".. _%s:" % label, "", title, "-" * len(title), "", "See `%s <%s>`__." % (title, url), ""]
    return "\n".join(parts)


def guide_names(collection: Path) -> list:
    found = sorted(path.stem for path in (collection / "docs").glob("*.md"))
    return [name for name in GUIDE_ORDER if name in found] + [name for name in found if name not in GUIDE_ORDER]


def add_toctree(index: Path, entries: list) -> None:
    toctree = ["", "", ".. toctree::", "   :maxdepth: 1", "   :caption: Guides", ""]
    toctree += ["   %s" % entry for entry in entries]
    with index.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(toctree) + "\n")


def main(collection_dir: str, rst_dir: str) -> int:
    collection, rst = Path(collection_dir), Path(rst_dir)
    guides = rst / "guides"
    guides.mkdir(exist_ok=True)
    names = guide_names(collection)
    for name in names:
        shutil.copyfile(collection / "docs" / ("%s.md" % name), guides / ("%s.md" % name))
    (guides / "playbooks.md").write_text(playbooks_page(collection), encoding="utf-8")
    (rst / "ansible_references.rst").write_text(ansible_references_page(), encoding="utf-8")
    index = rst / "index.rst"
    if not index.exists() or not re.search(r"\S", index.read_text(encoding="utf-8")):
        sys.exit("tools/docs_pages.py: antsibull-docs wrote no %s" % index)
    add_toctree(index, ["guides/%s" % name for name in names] + ["guides/playbooks"])
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
