"""Outgoing webhook deliveries waiting to be sent."""


class DeliveryQueue:
    """Events to deliver, each due from the time it was enqueued until marked delivered."""

    def __init__(self):
        self._events = {}  # event id -> {"payload", "next", "seq"}
        self._seq = 0

    def enqueue(self, event_id, payload, now):
        if event_id in self._events:
            return  # the same event twice is delivered once
        self._events[event_id] = {"payload": payload, "next": now, "seq": self._seq}
        self._seq += 1

    def due(self, now):
        ready = [(e["next"], e["seq"], eid) for eid, e in self._events.items() if e["next"] <= now]
        return [eid for _, _, eid in sorted(ready)]

    def payload(self, event_id):
        return self._events[event_id]["payload"]

    def mark_delivered(self, event_id):
        self._events.pop(event_id, None)
