# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restores from the Litestream replica the litestream role keeps: the databases as they were at the latest
moment or at a chosen second, through the archive restore's staging, integrity check, swap and safety copies."""
