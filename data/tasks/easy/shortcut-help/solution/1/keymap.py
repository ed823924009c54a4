"""Key bindings of the log viewer's terminal UI."""

KEYMAP = {
    "q": "quit",
    "g": "top",
    "G": "bottom",
    "/": "search",
    "?": "help",
}
