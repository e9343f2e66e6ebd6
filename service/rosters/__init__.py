"""Rosters: a sheet of students and guardians checked row by row, its guardian notices (入学通知书,
复学通知书) issued in thousands as one resumable job, each school's print file and the 回执台账."""
