"""One backend's own behaviour: its files, tables, errors and migrations."""
