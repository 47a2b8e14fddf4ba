"""One module per scenario; each returns a JSON-ready dict that bench/report.py reads."""
