"""Dropout cases (一生一表, one record per student), 劝返 attempts (persuading a student back to
school), the rules the notices set, and a case's guardian notices (rosters are in ``service.rosters``)."""
