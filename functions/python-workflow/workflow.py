"""The example durable workflow in Python, the twin of functions/order-workflow: reserve an
order, let a cool-off period pass, wait for an approval, then charge it, or release the
reservation when no approval comes in time.

Input: `{"order": 42, "amount_cents": 1999, "cool_off_s": 5, "approval_timeout_s": 3600}`
(the last two optional). Send the approval as signal `approved` with payload
`{"by": "..."}`. Plain invocations are refused (`NotDurable`), as by the Rust example."""

import json

import kiln

# The wait below is the first for `approved`, so the SDK stores its outcome under this key.
APPROVAL_KEY = "event:approved:1"


def workflow(instance):
    """Replayed from the start on every dispatch: each step returns its stored result once
    it has one. The step bodies stand in for calls to a stock and a payment service; a real
    one would pass `instance.id` as the idempotency key, since a step runs again if the
    container dies before its result is stored."""
    order = parse_order(instance.input)
    label = order["order"] if isinstance(order["order"], str) else compact(order["order"])
    reservation = instance.checkpoint("reserve", lambda: {"reservation": f"r-{label}"})
    instance.sleep("cool-off", order["cool_off_s"] * 1000)
    approval = instance.wait_for_event("approved", order["approval_timeout_s"] * 1000)
    # None is also the payload of an approval sent without one: only the stored outcome
    # tells a timeout apart.
    if instance.stored(APPROVAL_KEY, {}).get("timed_out") is True:
        instance.checkpoint("release", lambda: {"released": reservation["reservation"]})
        return {"order": order["order"], "status": "expired"}
    charge = instance.checkpoint("charge", lambda: {"charge": f"ch-{label}", "amount_cents": order["amount_cents"]})
    return {
        "order": order["order"],
        "status": "charged",
        "reservation": reservation["reservation"],
        "charge": charge["charge"],
        "approved_by": approval.get("by") if isinstance(approval, dict) else None,
    }


def parse_order(data):
    """The input with its defaults filled in; `Failure` `InvalidInput` when it does not fit.
    `order` may be any JSON value (a number or a string); the counts are whole numbers >= 0."""
    problem = None
    if not isinstance(data, dict):
        problem = f"it is {compact(data)}, not an object"
    else:
        data = dict({"cool_off_s": 5, "approval_timeout_s": 3600}, **data)
        for field in ("order", "amount_cents"):
            if field not in data:
                problem = problem or f"missing field `{field}`"
        for field in ("amount_cents", "cool_off_s", "approval_timeout_s"):
            value = data.get(field, 0)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
                problem = problem or f"`{field}` is {compact(value)}, not a whole number >= 0"
    if problem:
        raise kiln.Failure("InvalidInput", f'the input must be {{"order": id, "amount_cents": n}}: {problem}')
    return data


def compact(value):
    """`value` as compact JSON, as it appears in ids and messages."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# Serve when started as the container's command; tests import the module instead.
if __name__ == "__main__":
    kiln.serve_durable(workflow)
