"""Running the service: audit log, backup and restore, file storage."""
