"""The `omnimedia` command: submit, caption archives, serve, start workers, manage keys, quotas and the database.

Thin: every command parses its options and calls core."""
