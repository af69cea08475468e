"""The store conformance suite: every test runs unchanged against every store."""
