"""The engine, its data models and workflow schemas."""
