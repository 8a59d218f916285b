"""The one exception type for bad input or state; tools turn it into an MCP ToolError."""


class NanodistillError(ValueError):
    """Bad input or state, with a message that says what to change."""
