"""The Evotor readers without a database or a network: the public SELL and PAYBACK samples
(read in place from ../shared/samples/evotor, never copied in; outside CI a missing folder
skips those tests, in CI it fails them), documents of every type from the simulator's till,
the receipt feed, stores, devices, employees, products, account linking and the error
format."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ordersync.channels.evotor import (
    FREE_PRICE_COMMODITY,
    DocumentRejected,
    ErrorCode,
    EvotorErrorItem,
    EvotorProduct,
    EvotorRequestError,
    Feed,
    ReceiptEvent,
    ReceiptRejected,
    StockEffect,
    TillDocument,
    TillDocumentKind,
    batch_errors,
    dumps,
    error_body,
    loads,
    read_cloud_token,
    read_devices,
    read_document,
    read_documents,
    read_employees,
    read_products,
    read_receipts,
    read_stores,
    read_user_link,
    same_id,
    stable_product_uuid,
    user_linked,
)
from tests.evotor_sim import (
    DEFECTS,
    Ids,
    Item,
    Till,
    broken,
    device_json,
    employee_json,
    free_price_item,
    recase,
    samples_dir,
    store_json,
    till_product_json,
    to_json,
)
from tests.support import in_ci

D = Decimal
STORE = "20190528-92E7-4B2B-8B33-0123456789AB"
TEA = Item(
    "74e99680-3f9b-4abe-b902-fe197cf28ed2", "TEA-001", "Чай зелёный", D("199.99"), "4600000000017"
)
CHEESE = Item("0b0c2f0e-7d1a-4c55-9a57-2f1e4a7d9c11", "CH-7", "Сыр", D("899.90"), measure="кг")


def sample(name: str) -> bytes:
    folder = samples_dir()
    if folder is None:
        message = "the public Evotor samples (../shared/samples/evotor) are missing"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return (folder / name).read_bytes()


def one(document: Any, store: str = STORE) -> TillDocument:
    [result] = read_documents(to_json([document]), store)
    assert isinstance(result, TillDocument), result
    return result


def till(style: str = "lower") -> Till:
    return Till(STORE, ids=Ids(style, seed=7))


# --- the public samples ---------------------------------------------------------------------


def test_the_public_sell_sample_reads_as_a_sale_with_exact_figures() -> None:
    [sale] = read_documents(sample("SELL.json"), "5a188de4-0000-4000-8000-000000000001")

    assert isinstance(sale, TillDocument)
    assert (sale.kind, sale.stock_effect, sale.evotor_type) == (
        TillDocumentKind.SALE,
        StockEffect.OUT,
        "SELL",
    )
    assert sale.uuid == "175d8ae9-79db-4588-a65a-8f0613e2d0ff"
    assert sale.closed_at == datetime(2016, 9, 13, 14, 32, 9, tzinfo=UTC)
    assert (sale.number, sale.session_number, sale.fiscal_receipt_number) == (7, "1", "71")
    assert sale.device_uuid == "5a188de4-49b8-4cb4-800e-eb6b5202437e"
    assert sale.close_result_sum == D("3548.00") and sale.base_document_uuid is None
    [line] = sale.lines
    assert line.commodity_uuid == "74e99680-3f9b-4abe-b902-fe197cf28ed2"
    assert (line.commodity_code, line.name, line.measure_name) == ("1", "bla", "шт")
    assert line.quantity == D("1.000") and str(line.quantity) == "1.000"
    assert (line.price, line.sum, line.result_sum) == (D("3548.00"), D("3548.00"), D("3548.00"))
    assert line.balance_quantity == D(10) and line.tax == "NO_VAT" and line.moves_stock
    assert [(p.payment_type, p.amount) for p in sale.payments] == [
        ("CASH", D("3548.00")),
        ("CASH", D("0.00")),
    ]


def test_the_public_payback_sample_names_its_sale_and_returns_a_positive_quantity() -> None:
    [sale] = read_documents(sample("SELL.json"), STORE)
    [back] = read_documents(sample("PAYBACK.json"), STORE)

    assert isinstance(sale, TillDocument) and isinstance(back, TillDocument)
    assert (back.kind, back.stock_effect) == (TillDocumentKind.CUSTOMER_RETURN, StockEffect.IN)
    assert back.base_document_uuid == sale.uuid and back.base_document_number == "7"
    [line] = back.lines
    assert line.quantity == D("1.000") and line.result_sum == D("3548.00")
    assert back.payments[0].amount == D("-3548.00")  # the refund keeps the till's sign


def test_the_samples_sent_as_one_batch_are_two_documents_of_the_path_store() -> None:
    body = b"[" + sample("SELL.json") + b"," + sample("PAYBACK.json") + b"]"

    results = read_documents(body, STORE)

    assert [type(r) for r in results] == [TillDocument, TillDocument]
    assert {r.store_uuid for r in results if isinstance(r, TillDocument)} == {STORE.lower()}


# --- every document type --------------------------------------------------------------------

STOCK: dict[str, tuple[Callable[[Till], dict[str, Any]], TillDocumentKind, StockEffect]] = {
    "SELL": (lambda t: t.sell([(TEA, 2)]), TillDocumentKind.SALE, StockEffect.OUT),
    "PAYBACK": (
        lambda t: t.payback(t.sell([(TEA, 2)])),
        TillDocumentKind.CUSTOMER_RETURN,
        StockEffect.IN,
    ),
    "ACCEPT": (lambda t: t.accept([(TEA, 10)]), TillDocumentKind.GOODS_RECEIPT, StockEffect.IN),
    "WRITE_OFF": (lambda t: t.write_off([(TEA, 1)]), TillDocumentKind.WRITE_OFF, StockEffect.OUT),
    "INVENTORY": (
        lambda t: t.inventory([(TEA, 12, 10)]),
        TillDocumentKind.STOCK_COUNT,
        StockEffect.SET,
    ),
    "RETURN": (
        lambda t: t.supplier_return([(TEA, 3)]),
        TillDocumentKind.SUPPLIER_RETURN,
        StockEffect.OUT,
    ),
}
IGNORED: dict[str, Callable[[Till], dict[str, Any]]] = {
    "OPEN_SESSION": lambda t: t.open_session(),
    "CLOSE_SESSION": lambda t: t.close_session(),
    "CASH_INCOME": lambda t: t.cash_income("247.5"),
    "CASH_OUTCOME": lambda t: t.cash_outcome("247.5"),
    "FPRINT (X report)": lambda t: t.x_report(),
    "FPRINT (Z report)": lambda t: t.z_report(),
    "REVALUATION": lambda t: t.revaluation(TEA, "219.99"),
    "OPEN_TARE": lambda t: t.open_tare(TEA),
    "BUY": lambda t: t.buy([(TEA, 1)]),
    "BUYBACK": lambda t: t.buyback([(TEA, 1)]),
    "a type of tomorrow": lambda t: t.open_session() | {"type": "CORRECTION_OF_TOMORROW"},
}


@pytest.mark.parametrize("evotor_type", list(STOCK))
def test_every_stock_document_type_reads_with_its_kind_effect_and_lines(evotor_type: str) -> None:
    make, kind, effect = STOCK[evotor_type]
    t = till()
    raw = make(t)

    document = one(raw)

    assert (document.evotor_type, document.kind, document.stock_effect) == (
        evotor_type,
        kind,
        effect,
    )
    assert document.moves_stock and document.closed_at is not None
    assert document.uuid == raw["uuid"] and document.device_id == t.imei
    assert [(line.commodity_uuid, line.quantity > 0) for line in document.lines] == [
        (TEA.uuid, True)
    ]


@pytest.mark.parametrize("name", list(IGNORED))
def test_documents_that_move_no_stock_are_acknowledged_and_ignored(name: str) -> None:
    raw = IGNORED[name](till())

    document = one(raw)

    assert document.kind is TillDocumentKind.IGNORED and not document.moves_stock
    assert document.stock_effect is StockEffect.NONE and document.lines == ()
    assert document.uuid == (raw.get("uuid") or raw["id"])
    assert document.known_type is (name != "a type of tomorrow")


def test_an_ignored_document_with_an_unreadable_close_date_is_still_acknowledged() -> None:
    document = one(till().cash_income("10") | {"closeDate": "soon"})

    assert document.kind is TillDocumentKind.IGNORED and document.closed_at is None


def test_a_sale_with_several_lines_and_a_free_price_line_moves_stock_for_the_products_only() -> (
    None
):
    free_coded = free_price_item("150.00")  # the reserved uuid and a commodityCode "1"
    free_null = free_price_item("20.00", uuid=None)
    raw = till().sell([(TEA, 2), (free_coded, 1), (CHEESE, "0.347"), (free_null, 3)])

    document = one(raw)

    assert [line.position for line in document.lines] == [1, 2, 3, 4]
    assert [line.free_price for line in document.lines] == [False, True, False, True]
    assert [line.commodity_uuid for line in document.stock_lines] == [TEA.uuid, CHEESE.uuid]
    free = document.lines[1]
    assert free.commodity_uuid is None and free.commodity_code == "1" and not free.moves_stock
    assert FREE_PRICE_COMMODITY in to_json(raw)


def test_quantities_and_money_are_read_from_their_decimal_text() -> None:
    raw = till().sell([(CHEESE, "0.347"), (TEA, 3)], discount_percent=5)

    document = one(raw)

    cheese, tea = document.lines
    assert cheese.quantity == D("0.347") and cheese.sum == D("312.27")  # 899.90 x 0.347
    assert tea.sum == D("599.97") and tea.result_sum == D("569.97") and tea.discount == D("30.00")
    assert all(str(x.quantity).endswith(("347", ".000")) for x in document.lines)
    # numbers that binary floats would bend: 0.1 + 0.2, and 37.500 written with 3 places
    body = to_json([raw]).replace('"quantity":0.347', '"quantity":0.300')
    body = body.replace('"price":899.90', '"price":37.500', 1)
    [exact] = read_documents(body, STORE)
    assert isinstance(exact, TillDocument)
    assert exact.lines[0].quantity == D("0.1") + D("0.2") and exact.lines[0].price == D("37.50")


def test_inventory_reads_the_counted_figure_and_the_tills_own_figure_given_as_a_string() -> None:
    raw = till().inventory([(TEA, "12", 10), (CHEESE, "0.000", D("1.5"))])
    assert raw["transactions"][1]["balanceQuantity"] == "10"

    document = one(raw)

    assert [(line.quantity, line.balance_quantity) for line in document.lines] == [
        (D("12.000"), D("10.000")),
        (D("0.000"), D("1.500")),
    ]


def test_the_close_time_is_an_aware_datetime_in_utc_whatever_offset_was_sent() -> None:
    raw = till().sell([(TEA, 1)]) | {"closeDate": "2024-03-01T12:00:00.250+0300"}

    document = one(raw)

    assert document.closed_at == datetime(2024, 3, 1, 9, 0, 0, 250000, tzinfo=UTC)
    assert document.closed_at is not None and document.closed_at.tzinfo is UTC


# --- ids --------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", Ids.STYLES)
def test_ids_are_normalized_so_they_compare_case_insensitively(style: str) -> None:
    t = till(style)
    sale = t.sell([(TEA, 1)])
    back = t.payback(sale, base_uuid=recase(sale["uuid"]))

    read_sale, read_back = one(sale, recase(STORE)), one(back, STORE.lower())

    assert read_sale.uuid == sale["uuid"].lower() and read_sale.store_uuid == STORE.lower()
    assert read_back.base_document_uuid == read_sale.uuid
    assert read_sale.key == one(sale | {"uuid": recase(sale["uuid"])}).key
    assert same_id(sale["uuid"], recase(sale["uuid"]))
    if style == "dated":
        assert sale["uuid"].startswith("20190528-") and read_sale.uuid.startswith("20190528-")


def test_a_document_of_another_store_than_the_path_is_rejected() -> None:
    raw = till().sell([(TEA, 1)]) | {"storeUuid": "aaaaaaaa-0000-4000-8000-000000000001"}

    [result] = read_documents(to_json([raw]), STORE)

    assert isinstance(result, DocumentRejected)
    assert result.errors[0].code == ErrorCode.INCORRECT and result.errors[0].subject == "storeUuid"


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_a_batch_with_one_bad_document_reads_all_the_others(defect: str) -> None:
    t = till()
    good = [t.sell([(TEA, 1)]), t.accept([(TEA, 5)])]
    bad = broken(t.sell([(TEA, 2)]), defect)

    results = read_documents(to_json([good[0], bad, good[1]]), STORE)

    assert [type(r) for r in results] == [TillDocument, DocumentRejected, TillDocument]
    rejected = results[1]
    assert isinstance(rejected, DocumentRejected) and rejected.index == 1
    codes = {e.code for e in rejected.errors}
    assert codes <= {ErrorCode.MISSING, ErrorCode.INCORRECT}
    [item] = batch_errors(results)
    assert item.subject is not None and item.subject.startswith("[1]")
    if defect != "no_uuid" and defect != "not_an_object":
        assert rejected.uuid == bad["uuid"].lower()


def test_the_subject_of_a_refusal_names_the_field_by_its_path() -> None:
    raw = broken(till().sell([(TEA, 1)]), "four_decimals")

    [result] = read_documents(to_json([raw]), STORE)

    assert isinstance(result, DocumentRejected)
    [item] = batch_errors([result])
    assert item.as_json() == {
        "code": 2003,
        "reason": "incorrect: more than 3 decimals",
        "subject": "[0].transactions[1].quantity",
        "value": "1.0005",
    }


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"[{", ErrorCode.SYNTAX),
        (b'[{"quantity": NaN}]', ErrorCode.SYNTAX),
        (b"[Infinity]", ErrorCode.SYNTAX),
        (b'"a string"', ErrorCode.INCORRECT),
        (b"\xff\xfe", ErrorCode.SYNTAX),
        (b"[" * 100000, ErrorCode.SYNTAX),
    ],
)
def test_a_body_that_cannot_be_read_at_all_is_refused_whole(body: bytes, code: int) -> None:
    with pytest.raises(EvotorRequestError) as caught:
        read_documents(body, STORE)

    assert caught.value.items[0].code == code and caught.value.status == 400
    assert set(caught.value.body()) == {"errors"}


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        ("quantity", D("1e12"), "too large"),
        ("quantity", "1.0005", "more than 3 decimals"),
        ("quantity", True, "not a number"),
        ("quantity", 1.5, "a binary float"),
        ("price", D("1.005"), "more than 2 decimals"),
        ("price", D("1E+20"), "too large"),
        ("sum", "NaN", "not a finite number"),
    ],
)
def test_absurd_or_inexact_figures_are_refused(field: str, value: Any, detail: str) -> None:
    raw = till().sell([(TEA, 1)])
    raw["transactions"][1][field] = value

    with pytest.raises(EvotorRequestError) as caught:
        read_document(raw, STORE)

    assert caught.value.items[0].code == ErrorCode.INCORRECT
    assert detail in caught.value.items[0].reason


def test_a_negative_quantity_outside_a_payback_is_refused_not_guessed() -> None:
    with pytest.raises(EvotorRequestError, match="negative outside a PAYBACK"):
        read_document(broken(till().write_off([(TEA, 1)]), "negative_sale"), STORE)


def test_a_close_time_without_its_offset_is_refused() -> None:
    raw = till().sell([(TEA, 1)]) | {"closeDate": "2024-03-01T12:00:00.000"}

    with pytest.raises(EvotorRequestError, match="without its UTC offset"):
        read_document(raw, STORE)


def test_a_payback_with_positive_quantities_is_still_a_return() -> None:
    t = till()
    raw = t.payback(t.sell([(TEA, 2)]))
    raw["transactions"][1]["quantity"] = D("2.000")

    assert one(raw).lines[0].quantity == D("2.000")


# --- the V2 layout ---------------------------------------------------------------------------


def test_a_v2_layout_document_is_known_by_its_id_store_and_device() -> None:
    t = till("dated")
    raw = t.buyback([(TEA, 1)])

    document = one(raw)

    assert document.uuid == raw["id"].lower() and document.device_uuid == t.device_uuid.lower()
    assert document.device_id == t.imei and document.evotor_type == "BUYBACK"


def test_a_sale_in_the_v2_layout_reads_its_positions() -> None:
    raw = till().buy([(TEA, 2), (free_price_item("10.00"), 1)]) | {"type": "SELL"}

    document = one(raw)

    assert document.kind is TillDocumentKind.SALE and document.fiscal_receipt_number == "56"
    assert [(line.commodity_uuid, line.quantity) for line in document.stock_lines] == [
        (TEA.uuid, D("2.000"))
    ]
    assert document.lines[1].free_price and document.payments[0].amount == D("409.98")


# --- receipts -------------------------------------------------------------------------------


def _same_sale(document: TillDocument, receipt: TillDocument) -> None:
    assert receipt.key == document.key and receipt.kind is document.kind
    assert receipt.closed_at == document.closed_at and receipt.feed is Feed.RECEIPTS
    assert [(x.commodity_uuid, x.quantity, x.free_price) for x in receipt.lines] == [
        (x.commodity_uuid, x.quantity, x.free_price) for x in document.lines
    ]
    assert [x.result_sum for x in receipt.lines] == [x.result_sum for x in document.lines]


@pytest.mark.parametrize("style", Ids.STYLES)
def test_a_receipt_event_and_the_document_of_the_same_sale_are_one_till_document(
    style: str,
) -> None:
    t = till(style)
    sale = t.sell([(TEA, 2), (free_price_item("15.00"), 1), (CHEESE, "1.250")], discount_percent=3)
    event = t.receipt_event(sale)

    [result] = read_receipts(to_json(event))

    assert isinstance(result, ReceiptEvent) and result.receipt is not None
    assert (result.event_type, result.user_id, result.version) == (
        "ReceiptCreated",
        "01-000000000000001",
        "2",
    )
    assert result.event_id == event["id"].lower()
    _same_sale(one(sale), result.receipt)
    assert result.total_amount == one(sale).close_result_sum


def test_a_returned_sale_by_receipt_is_the_same_return_as_its_payback_document() -> None:
    t = till("upper")
    sale = t.sell([(TEA, 2)])
    back = t.payback(sale, [(TEA, 1)])

    [result] = read_receipts(to_json(t.receipt_event(back)))

    assert isinstance(result, ReceiptEvent) and result.receipt is not None
    _same_sale(one(back), result.receipt)
    assert result.receipt.stock_effect is StockEffect.IN


def test_the_deprecated_array_form_reads_each_receipt_of_either_shape() -> None:
    t = till()
    sales = [t.sell([(TEA, 1)]), t.sell([(CHEESE, "0.5")])]
    body = to_json([t.receipt_event(sales[0]), t.flat_receipt(sales[1])])

    results = read_receipts(body)

    keys = [r.receipt.key for r in results if isinstance(r, ReceiptEvent) and r.receipt]
    assert keys == [one(s).key for s in sales]
    flat = results[1]
    assert isinstance(flat, ReceiptEvent) and flat.event_id is None


def test_a_bad_receipt_in_the_array_is_rejected_alone() -> None:
    t = till()
    good, bad = t.receipt_event(t.sell([(TEA, 1)])), t.receipt_event(t.sell([(TEA, 1)]))
    bad["data"]["items"][0]["quantity"] = "many"
    del bad["data"]["storeId"]

    results = read_receipts(to_json([good, bad]))

    assert isinstance(results[0], ReceiptEvent)
    rejected = results[1]
    assert isinstance(rejected, ReceiptRejected) and rejected.receipt_uuid == bad["data"]["id"]
    assert rejected.errors[0].as_json() == {
        "code": 2002,
        "reason": "missing",
        "subject": "[1].data.storeId",
    }


def test_the_event_timestamp_is_kept_as_sent_even_with_the_documented_sixteen_digits() -> None:
    t = till()
    event = t.receipt_event(t.sell([(TEA, 1)])) | {"timestamp": "1496826444000001"}

    [result] = read_receipts(to_json(event))

    assert isinstance(result, ReceiptEvent) and result.timestamp == 1496826444000001


def test_an_event_of_another_type_is_acknowledged_without_a_receipt() -> None:
    t = till()
    event = t.receipt_event(t.sell([(TEA, 1)])) | {"type": "ReceiptDeleted"}

    [result] = read_receipts(to_json(event))

    assert isinstance(result, ReceiptEvent) and result.receipt is None


def test_a_receipt_item_named_by_a_shops_own_code_keeps_the_code() -> None:
    t = till()
    event = t.receipt_event(t.sell([(TEA, 1)]))
    event["data"]["items"][0]["id"] = "TEA-001"

    [result] = read_receipts(to_json(event))

    assert isinstance(result, ReceiptEvent) and result.receipt is not None
    [line] = result.receipt.lines
    assert (line.commodity_uuid, line.commodity_code, line.free_price) == (None, "TEA-001", False)


# --- stores, devices, employees, products, accounts ------------------------------------------


def test_stores_devices_and_employees_read_the_fields_the_hub_keeps() -> None:
    store_id, device_id = (
        "20170228-F4F1-401B-80FA-9ECCA8451FFB",
        "20170222-D58C-40E0-8051-B53ADFF38860",
    )
    [store] = read_stores(to_json([store_json(store_id, "Мой магазин", "Москва")]))
    [device] = read_devices(to_json([device_json(device_id, "Касса 3", store_id)]))
    employees = read_employees(
        to_json(
            [
                employee_json(
                    Ids().new(), "Иван", [store_id], last_name="Иванов", phone=79876543210
                ),
                employee_json(Ids(seed=2).new(), "Пётр", [])
                | {"stores": [{"storeUuid": store_id}]},
            ]
        )
    )

    assert (store.uuid, store.name, store.address) == (store_id.lower(), "Мой магазин", "Москва")
    assert (device.store_uuid, device.timezone_offset_ms) == (store_id.lower(), 10800000)
    assert employees[0].full_name == "Иванов Иван" and employees[0].phone == "79876543210"
    assert [e.store_uuids for e in employees] == [(store_id.lower(),), (store_id.lower(),)]


def test_a_store_without_a_name_refuses_the_array_naming_the_item() -> None:
    with pytest.raises(EvotorRequestError) as caught:
        read_stores(to_json([store_json(Ids().new(), "A"), {"uuid": Ids().new()}]))

    assert caught.value.items[0].as_json() == {
        "code": 2002,
        "reason": "missing",
        "subject": "[1].name",
    }


def test_products_created_on_a_till_read_with_exact_prices_and_barcodes() -> None:
    uuid = "01BA18B6-8707-5f47-3d9c-4db058054cb2"
    body = to_json([till_product_json(uuid, "Сидр", "123.12", "6", ["2000000000060"])])

    [product] = read_products(body)

    assert product.uuid == uuid.lower() and product.price == D("123.12")
    assert product.bar_codes == ("2000000000060",) and product.code == "6"


def test_a_product_description_is_written_with_exact_numbers_and_checked() -> None:
    namespace = Ids().new()
    product_uuid = stable_product_uuid(uuidlib.UUID(namespace), "product:42")
    product = EvotorProduct(
        uuid=product_uuid,
        name="Чай зелёный",
        code="TEA-001",
        bar_codes=("4600000000017",),
        price=D("199.90"),
        cost_price=D("120.00"),
        quantity=D("12.500"),
        measure_name="кг",
    )

    text = dumps([product.as_json()])

    assert product.problems() == []
    assert product_uuid == stable_product_uuid(uuidlib.UUID(namespace), "product:42")
    assert '"price":199.90' in text and '"quantity":12.500' in text
    assert loads(text)[0]["price"] == D("199.90")
    too_long = EvotorProduct(uuid="X", name="x" * 101, code="12345678901", tax="VAT_18_118")
    assert len(too_long.problems()) == 3


def test_account_linking_reads_the_user_and_hides_the_token() -> None:
    link = read_user_link(
        b'{"userId": "01-000000000000001", "username": "u", "password": "p", "inn": "7700000000"}'
    )
    token = read_cloud_token(b'{"userId": "01-000000000000001", "token": "s3cr3t-token"}')

    assert (link.user_id, link.username, link.custom_fields) == (
        "01-000000000000001",
        "u",
        {"inn": "7700000000"},
    )
    assert token.token == "s3cr3t-token" and "s3cr3t" not in repr(token) and "p'" not in repr(link)
    assert user_linked("01-000000000000001", "t") == {
        "userId": "01-000000000000001",
        "token": "t",
        "hasBilling": False,
    }
    with pytest.raises(EvotorRequestError, match="not an Evotor user id"):
        read_cloud_token(b'{"userId": "someone", "token": "t"}')


# --- the wire and the error format ------------------------------------------------------------


def test_json_is_written_without_floats_and_read_without_them() -> None:
    assert dumps({"a": [D("1.000"), D("3548.00"), 7, None, True, "чай"]}) == (
        '{"a":[1.000,3548.00,7,null,true,"чай"]}'
    )
    assert loads("[0.1, 37.500, 3]") == [D("0.1"), D("37.500"), 3]
    with pytest.raises(TypeError):
        dumps([0.1])
    with pytest.raises(ValueError):
        dumps([D("NaN")])


def test_errors_render_in_evotors_format_with_the_documented_statuses() -> None:
    error_item = EvotorErrorItem(2002, "missing", "deviceUuid")
    error = EvotorRequestError([error_item])

    assert error.body() == {
        "errors": [{"code": 2002, "reason": "missing", "subject": "deviceUuid"}]
    }
    assert error_body([error_item]) == error.body()
    statuses = {
        code: EvotorRequestError([EvotorErrorItem(code, "x")]).status
        for code in (1001, 1002, 1003, 1004, 1005, 2001, 2002, 2003, 2005)
    }
    assert statuses == {
        1001: 401,
        1002: 401,
        1003: 401,
        1004: 402,
        1005: 405,
        2001: 400,
        2002: 400,
        2003: 400,
        2005: 409,
    }


def test_sample_folder_lookup_prefers_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "samples" / "evotor").mkdir(parents=True)
    monkeypatch.setenv("ORDERSYNC_SHARED_DIR", str(tmp_path))

    assert samples_dir() == tmp_path / "samples" / "evotor"
