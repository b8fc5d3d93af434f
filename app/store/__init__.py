"""Persistence: SQLModel tables on SQLite or PostgreSQL, behind small interfaces."""
