# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The private key of every module that reads encrypted archives (argument spec: _option_specs.IDENTITY)."""

    DOCUMENTATION = r"""
options:
  identity_file:
    description:
      - The age identity (private key) file that decrypts encrypted archives (C(.age)), as C(age-keygen) writes it,
        mode C(0600) (a file readable by others is refused). Only the C(age) process opens it; its content is never
        read into Ansible, logged or put on a command line. The path itself is not secret.
      - Keep it off the app servers (they need only the public keys); bring it where a verification or a restore
        runs.
      - Without it, or with a key the archive was not encrypted to, an encrypted archive cannot be read, and the
        message says which of the two it is. A restore then fails before anything changes; a comprehensive
        verification says V(unverifiable). A quick verification needs no key (the C(.sha256) sidecar covers the
        ciphertext). Altered ciphertext is damage (V(invalid)), never an unreadable key.
      - Decryption proves nothing about who made the archive (age is not sender-authenticated, and the public keys
        are in C(.meta.json)), so a new archive encrypted to them passes. Give O(trusted_signing_keys) for that.
    type: path
"""
