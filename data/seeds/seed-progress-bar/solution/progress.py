def render_bar(done, total, width=20):
    """A text progress bar: ``[###---]  50% (3/6)``."""
    done = max(0, min(done, total))
    filled = width if total == 0 else done * width // total  # integers: no float rounding surprises
    percent = 100 if total == 0 else done * 100 // total
    return f"[{'#' * filled}{'-' * (width - filled)}] {str(percent) + '%':>4} ({done}/{total})"
