"""The HTTP side of pbxis: Klein routes, streams, the agent page. Thin by design."""
