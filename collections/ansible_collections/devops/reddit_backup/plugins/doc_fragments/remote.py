# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Options shared by every module that reaches a remote copy of the backups (backup_sync, backup_prune)."""

    DOCUMENTATION = r"""
options:
  remote:
    description:
      - Where the remote copy lives, laid out as the backup directory (C(daily/), C(incremental/) ...).
      - C(ssh://user@host[:port]/path) is a folder on a backup server, reached with rsync over ssh (rsync 3.2.3 or
        later on both ends; the server may restrict the key to rsync with C(rrsync)).
      - C(s3://bucket/prefix) is a prefix in an S3 bucket, or in an S3-compatible store with O(s3_endpoint_url)
        (boto3 on the host).
    type: str
  ssh_key:
    description:
      - The private key file that the backup server accepts (the path; its content is only read by ssh).
        Without it, ssh uses the user's keys and agent.
    type: path
  known_hosts:
    description:
      - A known_hosts file that holds the backup server's host key. Without it, the user's C(~/.ssh/known_hosts).
    type: path
  ssh_host_key_checking:
    description:
      - V(strict) connects only to a server whose host key is already in O(known_hosts).
      - V(accept-new) also accepts (and records in O(known_hosts)) the key of a server never seen before, but never
        a changed key. Host keys are always checked.
    type: str
    choices: [strict, accept-new]
    default: strict
  s3_endpoint_url:
    description: The URL of an S3-compatible store (MinIO, Ceph, ...). Unset for AWS S3.
    type: str
  s3_region:
    description: The bucket's region; unset to take it from the AWS environment.
    type: str
  s3_access_key:
    description:
      - The access key ID. With O(s3_secret_key); unset both to use the usual AWS environment (C(AWS_ACCESS_KEY_ID)
        and C(AWS_SECRET_ACCESS_KEY), C(~/.aws), an instance profile).
    type: str
  s3_secret_key:
    description: The secret access key. Never logged, never in a result.
    type: str
  s3_session_token:
    description: A session token for temporary credentials. Never logged, never in a result.
    type: str
  timeout:
    description: Seconds to wait for the remote to answer (connecting, and each request).
    type: float
    default: 30
"""
