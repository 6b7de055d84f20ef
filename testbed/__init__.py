"""CLI, controller loop, OTA runner, context store and run directories."""
