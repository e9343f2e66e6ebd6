"""Backup and restore of a whole installation (``docsign backup create`` / ``restore``).

``create.py`` writes a consistent, encrypted backup while the service runs; ``restore.py`` puts
one into an empty installation, whole or not at all. ``database.py`` is the database's part
(SQLite's online backup, pg_dump), ``sealed.py`` the encryption, ``layout.py`` what the folder
holds. The package sits beside the HTTP app, under the command line: it reads the composition
root's list of columns that name archived files, and opens the database, the stores and the PKI
folder itself, without starting the services (a restore must run before there is anything to
start).
"""

from service.backup.create import BackupReport, create_backup
from service.backup.restore import RestoreReport, restore_backup

__all__ = ["BackupReport", "RestoreReport", "create_backup", "restore_backup"]
