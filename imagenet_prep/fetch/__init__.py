"""Release files: the one table of archive facts (catalog), resumable verified downloads, and verify."""
