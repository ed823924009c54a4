"""Outgoing webhook deliveries waiting to be sent, retried with exponential back-off."""

BASE_DELAY = 30  # seconds before the first retry; doubles after every further failure
MAX_ATTEMPTS = 5


class DeliveryQueue:
    """Events to deliver; failed ones come due again later, and die after MAX_ATTEMPTS failures."""

    def __init__(self):
        self._events = {}  # event id -> {"payload", "next", "seq", "attempts", "state"}
        self._dead = []
        self._seq = 0

    def enqueue(self, event_id, payload, now):
        if event_id in self._events:
            return  # the same event twice is delivered once
        self._events[event_id] = {"payload": payload, "next": now, "seq": self._seq, "attempts": 0,
                                  "state": "pending"}
        self._seq += 1

    def due(self, now):
        ready = [(e["next"], e["seq"], eid) for eid, e in self._events.items()
                 if e["state"] == "pending" and e["next"] <= now]
        return [eid for _, _, eid in sorted(ready)]

    def payload(self, event_id):
        return self._events[event_id]["payload"]

    def attempts(self, event_id):
        return self._events[event_id]["attempts"]

    def mark_delivered(self, event_id):
        if event_id in self._events:
            self._events[event_id]["state"] = "delivered"

    def mark_failed(self, event_id, now):
        event = self._events[event_id]
        event["attempts"] += 1
        if event["attempts"] >= MAX_ATTEMPTS:
            event["state"] = "dead"
            self._dead.append(event_id)
        else:
            event["next"] = now + BASE_DELAY * 2 ** (event["attempts"] - 1)

    def dead_letters(self):
        return list(self._dead)
