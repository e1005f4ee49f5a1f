"""Hostile-server tests: raw loopback HTTP/1.1 servers that misbehave on purpose."""
