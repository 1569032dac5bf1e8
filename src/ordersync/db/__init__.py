"""The database adapter: tables, migrations, stock operations and the unit of work."""
