"""How payrelay is started: HTTP apps, the CLI, worker processes."""
