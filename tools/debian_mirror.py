#!/usr/bin/env python3
"""Prints the Debian mirror this machine's apt uses for bookworm main (deb822 `URIs:` or one-line `deb URL
bookworm ...`), for debootstrap (tools/molecule.sh, tools/fresh-check.sh). Exits 1 when there is none."""
import glob
import sys

paths = sys.argv[1:] or ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*"))
for path in paths:
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        continue
    if path.endswith(".sources"):
        for stanza in text.split("\n\n"):
            fields = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith(("#", " ")):
                    key, value = line.split(":", 1)
                    fields[key.strip().lower()] = value.split()
            if "bookworm" in fields.get("suites", []) and "main" in fields.get("components", []):
                print(fields["uris"][0].rstrip("/"))
                sys.exit(0)
    else:
        for line in text.splitlines():
            words = [w for w in line.split("#", 1)[0].split() if not w.startswith("[")]
            if len(words) >= 4 and words[0] == "deb" and words[2] == "bookworm" and "main" in words[3:]:
                print(words[1].rstrip("/"))
                sys.exit(0)
sys.exit(1)
