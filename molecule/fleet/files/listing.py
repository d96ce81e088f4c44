#!/usr/bin/python3
"""What each folder holds, as JSON: {folder: {relative path: {"sha256", "size", "owner", "mtime", "type"}}}.

The fleet scenario's view of backup folders (an app host's backup directory, each client folder on the backup
server), read before and after the attack and compared byte for byte. Every file below the folder is listed (not
the folders themselves); links are listed, never followed."""

import hashlib
import json
import os
import pwd
import stat
import sys


def describe(path: str) -> dict:
    info = os.lstat(path)
    entry = {"size": info.st_size, "mtime": info.st_mtime, "owner": pwd.getpwuid(info.st_uid).pw_name}
    if stat.S_ISLNK(info.st_mode):
        return dict(entry, type="link", target=os.readlink(path))
    if not stat.S_ISREG(info.st_mode):
        return dict(entry, type="other")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return dict(entry, type="file", sha256=digest.hexdigest())


def main(folders: list) -> int:
    listed = {}
    for folder in folders:
        found = {}
        for walked, _dirs, files in os.walk(folder):
            for name in files + [name for name in _dirs if os.path.islink(os.path.join(walked, name))]:
                path = os.path.join(walked, name)
                found[os.path.relpath(path, folder)] = describe(path)
        listed[folder] = dict(sorted(found.items()))
    json.dump(listed, sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
