"""pbxis: an Asterisk call center on the web."""

__version__ = "0.1.0"
