"""Names of the trade's values as the screens show them (message ids; translated when shown).
`N_` only marks a text for the catalog."""

from __future__ import annotations


def N_(message: str) -> str:
    return message


LABELS: dict[str, str] = {
    # channels
    "online": N_("Site"),
    "operator": N_("Phone"),
    "pos": N_("Till"),
    # fulfillment
    "delivery": N_("Delivery"),
    "pickup": N_("Pickup"),
    "in_store": N_("In store"),
    # order statuses
    "placed": N_("Placed"),
    "shipped": N_("Shipped"),
    "completed": N_("Completed"),
    "cancelled": N_("Cancelled"),
    "expired": N_("Expired"),
    # payment
    "unpaid": N_("Unpaid"),
    "paid": N_("Paid"),
    # holds
    "active": N_("Held"),
    "released": N_("Released"),
    "consumed": N_("Taken"),
    # actions
    "confirm": N_("Confirm"),
    "pay": N_("Mark paid"),
    "ship": N_("Ship"),
    "complete": N_("Complete"),
    "hand_over": N_("Hand over"),
    "cancel": N_("Cancel the order"),
    "resolve": N_("Resolved"),
    "hold_line": N_("Hold the line here"),
    "drop_line": N_("Drop the line"),
    # events of the timeline
    "order.created": N_("Order placed"),
    "order.paid": N_("Paid"),
    "order.confirmed": N_("Confirmed"),
    "order.status_changed": N_("Status changed"),
    "order.attention": N_("Attention"),
    "order.holds_moved": N_("Stock moved"),
    "order.line_cancelled": N_("Line dropped"),
    # roles
    "store": N_("Store staff"),
    "admin": N_("Administrator"),
    # movements
    "sale": N_("Sale"),
    "pos_sale": N_("Till sale"),
    "pos_return": N_("Till return"),
    "receipt": N_("Receipt"),
    "write_off": N_("Write-off"),
    "transfer_out": N_("Transfer out"),
    "transfer_in": N_("Transfer in"),
    "count": N_("Count"),
    "shipment": N_("Shipment"),
    "exchange_1c": N_("From 1C"),
    # attention codes
    "stock_taken_by_till_sale": N_("A till sale took units the order held"),
    "site_order_short": N_("The site order could not be held in full"),
    # the till review queue
    "unmatched_line": N_("A till line matched no product"),
    "unlinked_return": N_("A till return linked to no sale"),
    "unknown_till_product": N_("A product created on a till matched none of ours"),
    "failed_document": N_("A till document could not be applied"),
}

# Headings of the error pages, and the refusals the console itself words.
STATUS_TITLES: dict[int, str] = {
    400: N_("The request could not be read"),
    401: N_("Log in first"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    405: N_("Not allowed here"),
    409: N_("Not possible now"),
    413: N_("Too large"),
    415: N_("Not a form of this console"),
    422: N_("Not valid"),
    503: N_("Try again in a moment"),
}
MESSAGES = (
    N_("not found"),
    N_("not allowed here"),
    N_("the request is not valid"),
    N_("the database did not answer; retry"),
    N_("send the form as the page does"),
    N_("the form is too large"),
    N_("the form is not UTF-8"),
    N_("the form has expired or came from elsewhere: reload the page"),
    N_("this screen is not for your role"),
    N_("no store is yours to see"),
    N_("add at least one product"),
    N_("choose delivery or pickup"),
    N_("a quantity is not a number"),
    N_("a quantity must be above zero"),
    N_("the form has no valid token: reload the page"),
    N_("choose a store"),
)

# What an action's confirmation asks.
QUESTIONS: dict[str, str] = {
    "confirm": N_(
        "Confirm order %(number)s (the customer confirmed by phone)? Unpaid, it keeps its stock "
        "for the longer confirmed limit."
    ),
    "pay": N_("Mark order %(number)s as paid? Its stock stops expiring."),
    "ship": N_("Ship order %(number)s? Its held stock leaves the stores."),
    "complete": N_("Complete order %(number)s? Held stock is taken if it was not shipped."),
    "hand_over": N_("Hand order %(number)s over to the customer? Its held stock is taken."),
    "cancel": N_("Cancel order %(number)s? Its held stock is released."),
}


def label(value: object) -> str:
    text = getattr(value, "value", value)
    return LABELS.get(str(text), str(text))
