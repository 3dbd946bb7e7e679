"""SQLAlchemy Core storage for both databases; SQLite by default, PostgreSQL in production."""
