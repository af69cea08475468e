"""Tests of `chatflow ui`: the HTTP server and the page in a real browser."""
