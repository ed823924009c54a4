def trim_history(messages, max_chars):
    """System messages plus the newest other messages fitting in max_chars, in original order."""
    keep = [m["role"] == "system" for m in messages]
    budget = max_chars
    for i in range(len(messages) - 1, -1, -1):
        if keep[i]:
            continue
        budget -= len(messages[i]["content"])
        if budget < 0:
            break  # older messages are dropped too, so no gaps appear
        keep[i] = True
    return [m for m, k in zip(messages, keep) if k]
