"""Storage: SQLAlchemy Core tables, versioned migrations, and the repositories the pipelines commit through.

Every query is written in SQLAlchemy Core so that the same code runs on SQLite (embedded default) and PostgreSQL.
"""
