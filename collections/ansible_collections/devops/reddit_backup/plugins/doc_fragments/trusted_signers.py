# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Options of every module that checks who made a backup (argument spec: _option_specs.TRUSTED_SIGNERS)."""

    DOCUMENTATION = r"""
options:
  allowed_signers:
    description:
      - An OpenSSH C(allowed_signers) file on the host (see C(ssh-keygen(1)), ALLOWED SIGNERS) naming the public keys
        whose signatures are trusted, such as C(root@app1 namespaces="reddit-backup@devops" ssh-ed25519 AAAA...).
      - With this or O(trusted_signing_keys), every backup (and every link of its chain) must carry a
        C(<archive>.meta.json.sig) signature of its C(.meta.json) catalog entry made by a trusted key with
        C(ssh-keygen -Y sign), and the archive read must be the one that entry names (its sha256). A backup that is
        unsigned, signed by another key, whose signature does not match, or whose archive or manifest differs from
        the signed entry is refused, with the reason. Signatures are checked with C(ssh-keygen -Y verify).
      - Take the trusted keys from the inventory (or another place the backup store cannot write), never from the
        backup store itself.
      - Without either option, authenticity is not checked, and M(devops.reddit_backup.backup_verify) and
        M(devops.reddit_backup.backup_restore) say so (C(authenticated=false)).
    type: path
  trusted_signing_keys:
    description:
      - Trusted public keys, one OpenSSH public key line each (C(ssh-ed25519 AAAA... root@app1), as the C(.pub) file
        or the runner role prints them). The module writes them to a private temporary C(allowed_signers) file.
      - Used with or instead of O(allowed_signers), with the same meaning. A private key given here is refused
        without being shown.
    type: list
    elements: str
"""
