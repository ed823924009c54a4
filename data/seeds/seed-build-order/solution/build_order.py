import heapq


def build_order(deps):
    """Targets ordered after their dependencies, alphabetical among ready ones; ValueError on a cycle."""
    targets = set(deps) | {d for ds in deps.values() for d in ds}
    waiting = {t: set(deps.get(t, ())) for t in targets}
    users = {t: [] for t in targets}
    for target, needs in waiting.items():
        for need in needs:
            users[need].append(target)
    ready = [t for t, needs in waiting.items() if not needs]
    heapq.heapify(ready)
    order = []
    while ready:
        target = heapq.heappop(ready)
        order.append(target)
        for user in users[target]:
            waiting[user].discard(target)
            if not waiting[user]:
                heapq.heappush(ready, user)
    if len(order) < len(targets):
        stuck = sorted(t for t in targets if t not in order)
        raise ValueError(f"dependency cycle among: {', '.join(stuck)}")
    return order
