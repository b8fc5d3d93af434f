"""Persistence on SQLite or PostgreSQL: the database and its outage rule (`database`),
reads (`history`), the write path (`writes`), the outbox and the picture records."""
