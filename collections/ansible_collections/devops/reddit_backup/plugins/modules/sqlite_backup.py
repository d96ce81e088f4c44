#!/usr/bin/python
# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sqlite_backup
short_description: Take a consistent snapshot of one live SQLite database
version_added: 0.1.0
description:
  - The guide's quick database backup (C(sqlite3 DB ".backup FILE") followed by C(PRAGMA integrity_check)), done
    safely while the service keeps writing.
  - The snapshot is one read transaction of SQLite's online backup API, so it is one consistent point in time. In
    WAL mode writers go on committing while it runs and cannot make it restart.
  - The snapshot is written to a hidden temp file beside O(dest), checked, fsynced and renamed into place as mode
    C(0600). A snapshot that fails its integrity check is not kept.
author:
  - devops.reddit_backup developers (@devops)
extends_documentation_fragment:
  - devops.reddit_backup.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every run takes a new snapshot of a database that may have changed, so it always reports a change.
options:
  src:
    description: The live database file.
    type: path
    required: true
  dest:
    description:
      - Where the snapshot goes. An existing file there is replaced atomically.
      - When O(dest) is an existing directory, the snapshot is named C(<database stem>_<YYYYmmdd_HHMMSS>.db)
        (UTC) inside it, as in the guide.
    type: path
    required: true
  integrity:
    description:
      - How the snapshot is checked before it is kept.
      - V(quick) runs C(PRAGMA quick_check), V(full) runs C(PRAGMA integrity_check), V(none) skips the check.
    type: str
    choices: [none, quick, full]
    default: quick
"""

EXAMPLES = r"""
- name: Snapshot the pipeline database into the guide's manual folder
  devops.reddit_backup.sqlite_backup:
    src: /home/cayir/cicd_project/data/reddit_sentiment.db
    dest: /home/cayir/cicd_project/backups/manual/
    integrity: full
  register: snapshot

- name: Show where it went
  ansible.builtin.debug:
    msg: "{{ snapshot.dest }} ({{ snapshot.size }} bytes, integrity {{ snapshot.integrity }})"
"""

RETURN = r"""
dest:
  description: The snapshot file.
  returned: always
  type: str
  sample: /home/cayir/cicd_project/backups/manual/reddit_sentiment_20250528_120000.db
size:
  description: Size of the snapshot in bytes.
  returned: success and not check mode
  type: int
  sample: 373694464
sha256:
  description: SHA-256 of the snapshot file.
  returned: success and not check mode
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
integrity:
  description: C(ok), C(skipped), or SQLite's findings.
  returned: success and not check mode
  type: str
  sample: ok
page_size:
  description: The database page size in bytes.
  returned: success and not check mode
  type: int
  sample: 4096
page_count:
  description: Number of pages in the snapshot.
  returned: success and not check mode
  type: int
  sample: 91234
journal_mode:
  description: The journal mode of the live database (C(wal), C(delete), ...).
  returned: success and not check mode
  type: str
  sample: wal
duration:
  description: Seconds the snapshot and its check took.
  returned: always
  type: float
  sample: 1.42
"""

import os
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._guard import guarded
from ansible_collections.devops.reddit_backup.plugins.module_utils._database.sqlite import snapshot_file


def resolve_dest(src, dest):
    if os.path.isdir(dest):
        stem = os.path.splitext(os.path.basename(src))[0]
        return os.path.join(dest, "%s_%s.db" % (stem, datetime.now(timezone.utc).strftime("%Y%m%d_%H%M%S")))
    return dest


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path", required=True),
            dest=dict(type="path", required=True),
            integrity=dict(type="str", choices=["none", "quick", "full"], default="quick"),
        ),
        supports_check_mode=True,
    )
    with guarded(module, "taking a database snapshot"):
        run(module)


def run(module):
    dest = resolve_dest(module.params["src"], module.params["dest"])
    if module.check_mode:
        if not os.path.isfile(module.params["src"]):
            module.fail_json(msg="src %s does not exist" % module.params["src"])
        module.exit_json(changed=True, dest=dest, duration=0.0)
    try:
        result = snapshot_file(module.params["src"], dest, module.params["integrity"])
    except BackupError as error:
        module.fail_json(msg=str(error), dest=dest)
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
