#!/usr/bin/env python3
"""Prints the Debian mirror this machine's apt uses for bookworm main (deb822 `URIs:` or one-line `deb URL
bookworm ...`), for debootstrap (tools/molecule.py, tools/fresh-check.sh). Exits 1 when there is none."""
import glob
import sys


def _deb822_mirror(text: str) -> str:
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith(("#", " ")):
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.split()
        if "bookworm" in fields.get("suites", []) and "main" in fields.get("components", []):
            return fields["uris"][0].rstrip("/")
    return ""


def _one_line_mirror(text: str) -> str:
    for line in text.splitlines():
        words = [w for w in line.split("#", 1)[0].split() if not w.startswith("[")]
        if len(words) >= 4 and words[0] == "deb" and words[2] == "bookworm" and "main" in words[3:]:
            return words[1].rstrip("/")
    return ""


def find_mirror(paths: list = None) -> str:
    """The first bookworm main mirror of PATHS (apt's sources by default), or '' when there is none."""
    for path in paths or ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*")):
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError:
            continue
        mirror = _deb822_mirror(text) if path.endswith(".sources") else _one_line_mirror(text)
        if mirror:
            return mirror
    return ""


if __name__ == "__main__":
    found = find_mirror(sys.argv[1:])
    if found:
        print(found)
    sys.exit(0 if found else 1)
