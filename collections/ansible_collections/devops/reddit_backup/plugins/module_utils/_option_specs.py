# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The argument specs of the option groups that several modules share.

Each group is documented once, in the doc fragment named beside it (plugins/doc_fragments/), so the modules that
take a group cannot drift apart in what they accept or say. The remote options live with the remote
(``_remote.REMOTE_ARGUMENT_SPEC``, doc fragment ``remote``).
"""

from __future__ import annotations

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import TYPES

# doc fragment devops.reddit_backup.backup_dir
BACKUP_DIR = {"backup_dir": {"type": "path", "required": True}}
# doc fragment devops.reddit_backup.lock_timeout
LOCK_TIMEOUT = {"lock_timeout": {"type": "float", "default": 60}}
# doc fragment devops.reddit_backup.selection: which one backup of a backup directory a module reads
SELECTION = {"before": {"type": "str"}, "name": {"type": "str"}}
# doc fragment devops.reddit_backup.selection.type
SELECTION_TYPE = {"type": {"type": "str", "choices": list(TYPES)}}
# doc fragment devops.reddit_backup.identity
IDENTITY = {"identity_file": {"type": "path"}}
# doc fragment devops.reddit_backup.trusted_signers
TRUSTED_SIGNERS = {
    "allowed_signers": {"type": "path"},
    "trusted_signing_keys": {"type": "list", "elements": "str", "no_log": False},
}


def shared_options(*groups: dict, **own: dict) -> dict:
    """One argument spec from the shared groups and the module's own options (a copy: nothing shared is mutated)."""
    spec = {}
    for group in groups:
        spec.update({name: dict(option) for name, option in group.items()})
    spec.update(own)
    return spec
