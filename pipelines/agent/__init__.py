"""The agent's machinery shared by collect and eval: the sandbox every command runs in and the tools."""
