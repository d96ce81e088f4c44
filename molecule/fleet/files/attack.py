#!/usr/bin/python3
"""The attacker on one app host: with that host's own key, every way its jobs reach the backup server (rsync over
ssh, ssh with a command, SFTP, scp) turned against another host's folder on the server: list, read, delete,
overwrite. Prints one JSON object per attempt: {"name", "argv", "rc", "output", "fetched"}; "fetched" lists what
arrived in the attempt's own empty download folder. The scenario's verify asserts every attempt was refused.

    attack.py KEY KNOWN_HOSTS OWN_USER VICTIM_USER VICTIM_FOLDER VICTIM_FILE...
"""

import json
import os
import subprocess
import sys
import tempfile

SERVER = "127.0.0.1"


def attempts(key: str, known_hosts: str, own: str, victim_user: str, folder: str, files: list, work: str) -> list:
    ssh = ["ssh", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=" + known_hosts,
           "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20"]
    rsync = ["rsync", "-e", " ".join(ssh)]
    victim_name = os.path.basename(os.path.dirname(folder))
    relative = "../%s/backups" % victim_name          # from the attacker's folder to the victim's
    target = files[0]
    evil = os.path.join(work, "evil")
    with open(evil, "wb") as handle:
        handle.write(b"overwritten by the attacker\n")
    empty = os.path.join(work, "empty")
    os.mkdir(empty)
    link_dir = os.path.join(work, "link")
    os.mkdir(link_dir)
    os.symlink("../../%s/backups" % victim_name, os.path.join(link_dir, "victim"))

    def sftp(user: str, *commands: str) -> list:
        batch = os.path.join(work, "batch-%d" % len(os.listdir(work)))
        with open(batch, "w", encoding="utf-8") as handle:
            handle.write("\n".join(commands) + "\n")
        return ["sftp"] + ssh[1:] + ["-b", batch, "%s@%s" % (user, SERVER)]

    at = "%s@%s" % (own, SERVER)
    return [
        ("rsync: list the victim's folder through ..", rsync + ["%s:%s/" % (at, relative)]),
        ("rsync: list the victim's folder by its absolute path", rsync + ["%s:%s/" % (at, folder)]),
        ("rsync: read a victim's archive through ..", rsync + ["%s:%s/%s" % (at, relative, target), "DEST/"]),
        ("rsync: read a victim's archive by its absolute path", rsync + ["%s:%s/%s" % (at, folder, target), "DEST/"]),
        ("rsync: delete the victim's files (--delete through ..)",
         rsync + ["-r", "--delete", empty + "/", "%s:%s/" % (at, relative)]),
        ("rsync: overwrite a victim's archive through ..", rsync + [evil, "%s:%s/%s" % (at, relative, target)]),
        ("rsync: overwrite a victim's archive by its absolute path", rsync + [evil, "%s:%s/%s" % (at, folder, target)]),
        ("rsync: log in as the victim's user with the attacker's key",
         rsync + ["%s@%s:/" % (victim_user, SERVER), "DEST/"]),
        ("rsync: delete the victim's files as the victim's user", rsync + ["-r", "--delete", empty + "/",
                                                                          "%s@%s:/" % (victim_user, SERVER)]),
        ("rsync: plant a link to the victim's folder, then read through it",
         ["sh", "-c", '%s -l "$1"/victim "$2": && %s -r "$2":victim/ DEST/' % (
             " ".join("'%s'" % word for word in rsync), " ".join("'%s'" % word for word in rsync)),
          "attack", link_dir, at]),
        ("ssh: rsync's server command aimed at the victim's folder",
         ssh + [at, "rsync --server --sender -vlogDtpre.iLsfxC . %s/" % folder]),
        ("ssh: cat a victim's archive", ssh + [at, "cat %s/%s" % (folder, target)]),
        ("ssh: delete the victim's folder", ssh + [at, "rm -rf %s" % folder]),
        ("ssh: a shell", ssh + ["-T", at]),
        ("ssh: the victim's user with the attacker's key", ssh + ["%s@%s" % (victim_user, SERVER), "ls"]),
        ("sftp: list the victim's folder", sftp(own, "ls -la %s" % folder)),
        ("sftp: read a victim's archive", sftp(own, "get %s/%s DEST/" % (folder, target))),
        ("sftp: delete a victim's archive", sftp(own, "rm %s/%s" % (folder, target))),
        ("sftp: overwrite a victim's archive", sftp(own, "put %s %s/%s" % (evil, folder, target))),
        ("sftp: rename a victim's archive", sftp(own, "rename %s/%s %s/%s.gone" % (folder, target, folder, target))),
        ("sftp: link to the victim's folder from the attacker's replica", sftp(own, "symlink %s victim" % folder)),
        ("sftp: hard-link a victim's archive", sftp(own, "ln %s/%s stolen" % (folder, target))),
        ("sftp: the victim's user with the attacker's key", sftp(victim_user, "ls")),
        ("scp: copy a victim's archive", ["scp"] + ssh[1:] + ["%s:%s/%s" % (at, folder, target), "DEST/"]),
    ]


def main(argv: list) -> int:
    key, known_hosts, own, victim_user, folder, *files = argv
    results = []
    with tempfile.TemporaryDirectory() as work:
        for number, (name, argv_) in enumerate(attempts(key, known_hosts, own, victim_user, folder, files, work)):
            dest = os.path.join(work, "dest-%d" % number)
            os.mkdir(dest)
            argv_ = [word.replace("DEST/", dest + "/") for word in argv_]
            done = subprocess.run(argv_, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
                                  check=False)
            results.append({"name": name, "argv": argv_, "rc": done.returncode,
                            "output": (done.stdout + done.stderr).strip()[-1500:], "fetched": sorted(os.listdir(dest))})
    json.dump(results, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
