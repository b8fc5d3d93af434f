"""Real PostgreSQL, Kafka and S3 servers for the tests, started from Python packages.

`fixtures` is the pytest plugin; `postgres`, `kafka` and `s3` hold one service
class each (start, stop, restart, the address to connect to); `processes` and
`ports` are what they share. Nothing here is imported by the application.
"""
