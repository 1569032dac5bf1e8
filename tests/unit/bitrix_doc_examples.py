"""Response and event examples copied from the official Bitrix REST documentation
(github.com/bitrix24/b24restdocs), verbatim, to test the channel's readers against the documented
shapes rather than against our simulator."""

from __future__ import annotations

# api-reference/sale/order/sale-order-get.md, "Response Handling" (the `time` block left out)
SALE_ORDER_GET = r"""
{
    "result": {
        "order": {
            "accountNumber": "392",
            "additionalInfo": "",
            "affiliateId": null,
            "basketItems": [
                {
                    "barcodeMulti": "N",
                    "basePrice": 980,
                    "canBuy": "Y",
                    "catalogXmlId": "cbc2957f-09fc-4b2a-b9de-6f925c4c9047",
                    "currency": "USD",
                    "customPrice": "N",
                    "dateInsert": "2024-02-28T17:35:06+02:00",
                    "dateRefresh": null,
                    "dateUpdate": "2024-02-28T17:37:08+02:00",
                    "detailPageUrl": "",
                    "dimensions": "a:3:{s:5:\u0022WIDTH\u0022;N;s:6:\u0022HEIGHT\u0022;N;s:6:\u0022LENGTH\u0022;N;}",
                    "discountCoupon": "",
                    "discountName": "",
                    "discountPrice": 0,
                    "discountValue": "",
                    "fuserId": 4,
                    "id": "255",
                    "lid": "s1",
                    "measureCode": "796",
                    "measureName": "pcs",
                    "module": "catalog",
                    "name": "Men's Fire T-Shirt",
                    "notes": "BASE",
                    "orderId": "236",
                    "price": 980,
                    "priceTypeId": 1,
                    "productId": 348,
                    "productPriceId": 112,
                    "productProviderClass": "\\Bitrix\\Catalog\\Product\\CatalogProvider",
                    "productXmlId": "1000000386",
                    "properties": [
                        {
                            "basketId": 255,
                            "code": "CATALOG.XML_ID",
                            "id": 139,
                            "name": "Catalog XML_ID",
                            "sort": 100,
                            "value": "cbc2957f-09fc-4b2a-b9de-6f925c4c9047",
                            "xmlId": "bx_65df52a9ac502"
                        },
                        {
                            "basketId": 255,
                            "code": "PRODUCT.XML_ID",
                            "id": 140,
                            "name": "Product XML_ID",
                            "sort": 100,
                            "value": "1000000386",
                            "xmlId": "bx_65df52a9ace55"
                        }
                    ],
                    "quantity": 1,
                    "recommendation": "",
                    "reservations": [
                        {
                            "basketId": 255,
                            "dateReserve": "2024-02-28T17:36:51+02:00",
                            "dateReserveEnd": "2024-03-01T23:00:00+02:00",
                            "id": 39,
                            "quantity": 1,
                            "reservedBy": null,
                            "storeId": 1
                        }
                    ],
                    "setParentId": "",
                    "sort": 100,
                    "subscribe": "N",
                    "type": "",
                    "vatIncluded": "Y",
                    "vatRate": 0.2,
                    "weight": 0,
                    "xmlId": "bx_65df52a9ab47f"
                }
            ],
            "canceled": "N",
            "clients": [
                {
                    "entityId": 6,
                    "entityTypeId": 3,
                    "id": 901,
                    "isPrimary": "Y",
                    "orderId": 236,
                    "roleId": 0,
                    "sort": 0
                }
            ],
            "comments": "",
            "companyId": 0,
            "currency": "USD",
            "dateCanceled": null,
            "dateInsert": "2024-02-28T17:36:55+02:00",
            "dateLock": null,
            "dateMarked": null,
            "dateStatus": "2024-02-28T17:36:38+02:00",
            "dateUpdate": "2024-02-28T17:37:11+02:00",
            "deducted": "N",
            "discountValue": 0,
            "empCanceledId": null,
            "empMarkedId": null,
            "empStatusId": 1,
            "externalOrder": "N",
            "id": 236,
            "id1c": "",
            "lid": "s1",
            "lockedBy": "",
            "marked": "N",
            "orderTopic": "",
            "payed": "N",
            "payments": [
                {
                    "accountNumber": "392\/1",
                    "comments": "",
                    "companyId": 0,
                    "currency": "USD",
                    "dateBill": "2024-02-28T17:36:44+02:00",
                    "dateMarked": null,
                    "datePaid": null,
                    "datePayBefore": null,
                    "dateResponsibleId": null,
                    "empMarkedId": null,
                    "empPaidId": null,
                    "empResponsibleId": null,
                    "empReturnId": null,
                    "externalPayment": "N",
                    "id": 123,
                    "id1c": "",
                    "isReturn": "N",
                    "marked": "N",
                    "orderId": 236,
                    "paid": "N",
                    "payReturnComment": "",
                    "payReturnDate": null,
                    "payReturnNum": "",
                    "paySystemId": 48,
                    "paySystemIsCash": "N",
                    "paySystemName": "Card Payment",
                    "paySystemXmlId": "bx_65df3d512af59",
                    "payVoucherDate": null,
                    "payVoucherNum": "",
                    "priceCod": "0",
                    "psCurrency": "",
                    "psInvoiceId": 2,
                    "psResponseDate": null,
                    "psStatus": "",
                    "psStatusCode": "",
                    "psStatusDescription": "",
                    "psStatusMessage": "",
                    "psSum": null,
                    "reasonMarked": "",
                    "responsibleId": null,
                    "sum": 1480,
                    "updated1c": "N",
                    "version1c": "",
                    "xmlId": "bx_65df530c472fa"
                }
            ],
            "personTypeId": 3,
            "personTypeXmlId": "",
            "price": 1480,
            "propertyValues": [
                {
                    "code": "FIO",
                    "id": 1514,
                    "name": "First Last",
                    "orderPropsId": 20,
                    "orderPropsXmlId": null,
                    "value": "John Smith"
                },
                {
                    "code": "EMAIL",
                    "id": 1515,
                    "name": "E-Mail1",
                    "orderPropsId": 21,
                    "orderPropsXmlId": "bx_63a082af0d250",
                    "value": "email@mail.com"
                },
                {
                    "code": "PHONE",
                    "id": 1516,
                    "name": "Phone1",
                    "orderPropsId": 22,
                    "orderPropsXmlId": "bx_63a082a06864d",
                    "value": "14151234567"
                },
                {
                    "code": "CONTACT_ADDRESS",
                    "id": 1517,
                    "name": "Address",
                    "orderPropsId": 42,
                    "orderPropsXmlId": null,
                    "value": null
                },
                {
                    "code": "ADDRESS",
                    "id": 1518,
                    "name": "Delivery Address",
                    "orderPropsId": 26,
                    "orderPropsXmlId": null,
                    "value": "test"
                }
            ],
            "reasonCanceled": "",
            "reasonMarked": "",
            "recountFlag": "Y",
            "recurringId": "",
            "requisiteLink": {
                "bankDetailId": 0,
                "mcBankDetailId": 0,
                "mcRequisiteId": 0,
                "requisiteId": 3
            },
            "responsibleId": 1,
            "shipments": [
                {
                    "accountNumber": "392\/2",
                    "allowDelivery": "N",
                    "basePriceDelivery": 500,
                    "canceled": "N",
                    "comments": "",
                    "companyId": 0,
                    "currency": "USD",
                    "customPriceDelivery": "N",
                    "dateAllowDelivery": null,
                    "dateCanceled": null,
                    "dateDeducted": null,
                    "dateInsert": "2024-02-28T17:36:41+02:00",
                    "dateMarked": null,
                    "dateResponsibleId": null,
                    "deducted": "N",
                    "deliveryDocDate": null,
                    "deliveryDocNum": "",
                    "deliveryId": 1,
                    "deliveryName": "Courier Delivery",
                    "deliveryXmlId": "",
                    "discountPrice": 0,
                    "empAllowDeliveryId": null,
                    "empCanceledId": null,
                    "empDeductedId": null,
                    "empMarkedId": null,
                    "empResponsibleId": null,
                    "externalDelivery": "N",
                    "id": 338,
                    "id1c": "",
                    "marked": "N",
                    "orderId": 236,
                    "priceDelivery": 500,
                    "reasonMarked": "",
                    "reasonUndoDeducted": "",
                    "responsibleId": null,
                    "shipmentItems": [
                        {
                            "basketId": 255,
                            "dateInsert": "2024-02-28T17:36:53+02:00",
                            "id": 320,
                            "orderDeliveryId": 338,
                            "quantity": 1,
                            "reservedQuantity": 1,
                            "xmlId": "bx_65df5309cf490"
                        }
                    ],
                    "statusId": "DN",
                    "statusXmlId": "",
                    "system": "N",
                    "trackingDescription": "",
                    "trackingLastCheck": "",
                    "trackingNumber": "",
                    "trackingStatus": "",
                    "updated1c": "N",
                    "version1c": "",
                    "xmlId": "bx_65df5309939b8"
                }
            ],
            "statusId": "N",
            "statusXmlId": "",
            "taxValue": 163.33,
            "tradeBindings": [
                {
                    "externalOrderId": "236",
                    "id": 224,
                    "orderId": 236,
                    "params": null,
                    "tradingPlatformId": "9",
                    "tradingPlatformXmlId": "bx_659ff72864c8f",
                    "xmlId": "bx_65df53067ac59"
                }
            ],
            "updated1c": "N",
            "userDescription": "",
            "userId": 1,
            "version": 1,
            "version1c": "",
            "xmlId": "bx_65df53063d56d"
        }
    }
}
"""  # noqa: E501

# api-reference/sale/order/sale-order-list.md, "Response Handling" (one row; `time` left out)
SALE_ORDER_LIST = r"""
{
    "result": {
        "orders": [
            {
                "accountNumber": "165",
                "additionalInfo": "",
                "affiliateId": null,
                "canceled": "N",
                "comments": "",
                "companyId": null,
                "currency": "USD",
                "dateCanceled": null,
                "dateInsert": "2022-10-14T17:19:11+02:00",
                "dateLock": null,
                "dateMarked": null,
                "dateStatus": "2022-10-14T17:19:03+02:00",
                "dateUpdate": "2022-10-14T17:19:11+02:00",
                "deducted": "N",
                "discountValue": 0,
                "empCanceledId": null,
                "empMarkedId": null,
                "empStatusId": 1,
                "externalOrder": "N",
                "id": 9,
                "id1c": "",
                "lid": "s1",
                "lockedBy": "",
                "marked": "N",
                "orderTopic": "",
                "payed": "N",
                "personTypeId": 4,
                "personTypeXmlId": "",
                "price": 1176,
                "reasonCanceled": "",
                "reasonMarked": "",
                "recountFlag": "Y",
                "recurringId": "",
                "responsibleId": 1,
                "statusId": "N",
                "statusXmlId": "",
                "taxValue": 196,
                "updated1c": "N",
                "userDescription": "",
                "userId": 2,
                "version": 0,
                "version1c": "",
                "xmlId": "bx_63498bf7c8d31"
            }
        ]
    },
    "total": 1
}
"""

# api-reference/sale/events/on-sale-order-saved.md, "What the Handler Receives", as the form an
# outgoing webhook posts (local-integrations/local-webhooks.md: application/x-www-form-urlencoded;
# an outgoing webhook's auth has domain, member_id and application_token)
ON_SALE_ORDER_SAVED = {
    "event": "ONSALEORDERSAVED",
    "event_handler_id": "1",
    "data[FIELDS][ID]": "300",
    "data[FIELDS][XML_ID]": "",
    "data[FIELDS][ACTION]": "save",
    "ts": "1714649632",
    "auth[domain]": "some-domain.bitrix24.com",
    "auth[member_id]": "a223c6b3710f85df22e9377d6c4f7553",
    "auth[application_token]": "51856fefc120afa4b628cc82d3935cce",
}

# api-reference/sale/events/on-sale-before-order-delete.md
ON_SALE_BEFORE_ORDER_DELETE = {
    **ON_SALE_ORDER_SAVED,
    "event": "ONSALEBEFOREORDERDELETE",
    "data[FIELDS][ACTION]": "delete",
}

# api-reference/sale/events/on-payment-entity-saved.md: the ID is the payment's
ON_PAYMENT_ENTITY_SAVED = {
    "event": "ONPAYMENTENTITYSAVED",
    "event_handler_id": "1",
    "data[FIELDS][ID]": "300",
    "ts": "1714649632",
    "auth[domain]": "some-domain.bitrix24.com",
    "auth[member_id]": "a223c6b3710f85df22e9377d6c4f7553",
    "auth[application_token]": "51856fefc120afa4b628cc82d3935cce",
}
DOC_TOKEN = "51856fefc120afa4b628cc82d3935cce"
