"""Retention: personal data kept only as long as its purpose needs (个人信息保护法 art. 19, 47).

``rules.py`` says when each kind of record is due, ``service.py`` finds what is due and anonymises
it (the rows keep what the figures need, the files and signed PDFs go), and records each removal
in the retention log; ``tasks.py`` runs it every day.
"""
