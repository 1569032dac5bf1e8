"""The Evotor channel: the hub as the "third-party service" of the Evotor cloud, per the
current root files of evotor/documentation-api (paths.yaml, definitions.yaml, responses.yaml,
parameters.yaml, pos-docs/*.json).

Pure readers turn what the cloud sends into frozen dataclasses (no I/O, no database):
- model.py: TillDocument, TillLine, Payment: what the services act on;
- documents.py: till documents; receipts.py: the receipt feed (the same sale becomes the same
  TillDocument key either way);
- entities.py: stores, devices, employees; products.py: product descriptions, both ways;
  account.py: account linking; errors.py: Evotor's error format.
wire.py reads and writes JSON without binary floats; cloud.py is the hub's REST client, its
errors in cloud_errors.py."""

from .account import CloudToken, UserLink, read_cloud_token, read_user_link, user_linked
from .documents import batch_errors, read_document, read_documents
from .entities import (
    EvotorDevice,
    EvotorEmployee,
    EvotorStore,
    read_devices,
    read_employees,
    read_stores,
)
from .errors import (
    ErrorCode,
    EvotorErrorItem,
    EvotorRequestError,
    error_body,
    unauthorized,
)
from .model import (
    FREE_PRICE_COMMODITY,
    DocumentRejected,
    DocumentResult,
    Feed,
    Payment,
    StockEffect,
    TillDocument,
    TillDocumentKind,
    TillLine,
)
from .products import EvotorProduct, read_products, stable_product_uuid
from .receipts import (
    ReceiptEvent,
    ReceiptRejected,
    ReceiptResult,
    read_receipt_event,
    read_receipts,
)
from .values import format_moment, normalize_id, same_id
from .wire import dumps, loads

__all__ = [
    "FREE_PRICE_COMMODITY",
    "CloudToken",
    "DocumentRejected",
    "DocumentResult",
    "ErrorCode",
    "EvotorDevice",
    "EvotorEmployee",
    "EvotorErrorItem",
    "EvotorProduct",
    "EvotorRequestError",
    "EvotorStore",
    "Feed",
    "Payment",
    "ReceiptEvent",
    "ReceiptRejected",
    "ReceiptResult",
    "StockEffect",
    "TillDocument",
    "TillDocumentKind",
    "TillLine",
    "UserLink",
    "batch_errors",
    "dumps",
    "error_body",
    "format_moment",
    "loads",
    "normalize_id",
    "read_cloud_token",
    "read_devices",
    "read_document",
    "read_documents",
    "read_employees",
    "read_products",
    "read_receipt_event",
    "read_receipts",
    "read_stores",
    "read_user_link",
    "same_id",
    "stable_product_uuid",
    "unauthorized",
    "user_linked",
]
