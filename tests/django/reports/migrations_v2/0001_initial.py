"""Release v2's migration history starts with v1's first migration, unchanged."""
import importlib

Migration = importlib.import_module("reports.migrations.0001_initial").Migration
