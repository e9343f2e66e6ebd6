"""Dropout cases (一生一表, one record per student), 劝返 attempts (persuading a student back to
school), the rules the notices set, guardian notices, and rosters issued in thousands."""
