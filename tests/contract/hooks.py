"""Schemathesis hooks of the contract run (run_schemathesis.py loads them via SCHEMATHESIS_HOOKS).

Values the runner pins to its fixtures. schemathesis.toml pins path, query and header values in
every phase; body overrides there do not reach the coverage phase, and some path values must
not be pinned in the stateful phase, so those are set here, before each request, where
schemathesis re-checks whether the case is still a valid or an invalid one. Each pin says why
generated values cannot reach a 2xx.
"""

import hashlib
import hmac
import json
import os
import time

import schemathesis


def env(name):
    return lambda: os.environ[name]


def const(value):
    return lambda: value


BODY = {
    # lms: which questions a quiz has and which exist in the bank are data, not schema; an
    # answer key must fit its question's kind (a rule across fields).
    "POST /api/attempts/{id}/submission": {"answers": const([])},
    "POST /api/candidate-quiz/{token}/submission": {"answers": const([])},
    # A batch's students must be enrolled in its course, one batch per course: the runner's
    # enrolled USER, in the runner's batch (a new batch takes nobody).
    "POST /api/admin/batches": {"courseId": env("MAS_CT_COURSE"), "studentIds": const([])},
    "POST /api/admin/batches/{batch_id}/students": {"studentIds": lambda: [os.environ["MAS_CT_USER_ID"]]},
    "POST /api/batchlead/classes/{class_id}/attendance": {"userId": env("MAS_CT_USER_ID")},
    "POST /api/admin/quizzes": {
        "courseId": env("MAS_CT_COURSE"),
        "questionIds": lambda: [os.environ["MAS_CT_QUESTION"]],
    },
    "POST /api/admin/questions": {
        "kind": const("QUESTION_KIND_SHORT_ANSWER"),
        "options": const([]),
        "correctOptions": const([]),
        "acceptedAnswers": const(["42"]),
    },
    # A user of the runner's: no generated address has an account.
    "POST /api/auth/login": {
        "email": env("MAS_CT_LOGIN_EMAIL"),
        "password": env("MAS_CT_LOGIN_PASSWORD"),
    },
    # Secrets that reach a user by email or from an earlier answer.
    "POST /api/auth/refresh": {"refreshToken": env("MAS_CT_REFRESH_TOKEN")},
    "POST /api/auth/otp/verify": {
        "email": env("MAS_CT_OTP_EMAIL"),
        "code": env("MAS_CT_OTP_CODE"),
    },
    "POST /api/auth/password/reset": {"token": env("MAS_CT_RESET_TOKEN")},
    # The pass's own password both ways: the password stays what it was.
    "POST /api/auth/change-password": {
        "currentPassword": env("MAS_CT_PASSWORD"),
        "newPassword": env("MAS_CT_PASSWORD"),
    },
    "POST /api/auth/master-login": {"userId": env("MAS_CT_USER_ID")},
    # Records of the runner's: an available slot of the mentor's, the one to move a booking to.
    "POST /api/bookings": {"slotId": env("MAS_CT_SLOT_BOOK")},
    "POST /api/bookings/{booking_id}/reschedule": {"slotId": env("MAS_CT_SLOT_RESCHEDULE")},
    # An IANA zone name (the field's description); the schema cannot list the zone database.
    "PUT /api/mentors/me": {"timeZone": const("UTC")},
    # A local time in the future: the pattern cannot say "a real date, after now".
    "POST /api/mentors/me/slots": {"startLocal": env("MAS_CT_SLOT_START")},
    # WhatsApp fields belong to WhatsApp templates and email needs a subject: rules across fields
    # that the schema does not carry (schemathesis.toml pins the channel to in_app).
    "PUT /api/admin/notification-templates/{channel}/{name}": {
        "whatsappTemplate": const(""),
        "whatsappLanguage": const(""),
        "whatsappParameters": const([]),
    },
    # The run's own Razorpay secrets, so that the webhook deliveries hooks.py signs verify.
    "PUT /api/finance/razorpay": {
        "keySecret": env("MAS_CT_RAZORPAY_KEY_SECRET"),
        "webhookSecret": env("MAS_CT_RAZORPAY_WEBHOOK_SECRET"),
    },
    # A GSTIN's check character and its state are rules the pattern cannot carry: the
    # platform is the run's own registered supplier.
    "PUT /api/finance/gst-settings": {
        "gstin": const("29AAGCB7383J1Z4"),
        "stateCode": const("29"),
        "invoicePrefix": const("CT"),
    },
    # A full refund of the pass's purchase (the pack's own tokens, so the wallet covers it; how
    # many tokens a pack holds is data, not schema).
    "POST /api/finance/payments/{id}/refunds": {"tokens": const(0), "amountPaise": const(0)},
    # The checkout's callback as Razorpay signs it: the pass's own captured purchase.
    "POST /api/finance/payments/{id}/verify": {
        "razorpayPaymentId": env("MAS_CT_RAZORPAY_PAYMENT"),
        "razorpaySignature": env("MAS_CT_RAZORPAY_SIGNATURE"),
    },
    # The runner's token pack (a generated id is no product), bought by a buyer in a state that
    # exists, as a consumer (no GSTIN to check).
    "POST /api/finance/orders": {
        "productId": env("MAS_CT_PRODUCT"),
        "billing": const({"name": "Contract Buyer", "stateCode": "29", "gstin": "", "email": ""}),
    },
    # The bank's confirmation of the runner's payout run: a generated file names no payout of
    # the run.
    "POST /api/finance/payout-runs/{id}/confirmations": {"csv": env("MAS_CT_PAYOUT_CSV")},
    # The recipient's form depends on the channel and the template must exist: an in-app
    # message from the runner's template to the pass's own user.
    "POST /api/admin/notifications/send": {
        "channel": const("in_app"),
        "template": const("contract-note"),
        "recipient": env("MAS_CT_SELF_ID"),
        "variablesJson": const("{}"),
    },
}


# Records the run deletes or changes, pinned outside the stateful phase (schemathesis.toml says
# why): there a deleted id would stand in for the one just created.
PATH = {
    "GET /api/admin/users/{id}": {"id": env("MAS_CT_USER_ID")},
    "PATCH /api/admin/users/{id}": {"id": env("MAS_CT_VICTIM_UPDATE")},
    "DELETE /api/admin/users/{id}": {"id": env("MAS_CT_VICTIM_DELETE")},
    "DELETE /api/mentors/me/slots/{slot_id}": {"slot_id": env("MAS_CT_SLOT_DELETE")},
}


WEBHOOK = "POST /api/webhooks/whatsapp/{platform}"
# Meta's verification: the mode and the token are Meta's and the run's; the challenge is
# generated and echoed.
HANDSHAKE = "GET /api/webhooks/whatsapp/{platform}"
RAZORPAY = "POST /api/finance/webhooks/razorpay"


def whatsapp_delivery() -> bytes:
    """A delivery as Meta sends it: an inbound message from a number of the run's own."""
    message = {"from": "919800000077", "id": "wamid.contract", "timestamp": str(int(time.time())),
               "type": "text", "text": {"body": "hi"}}
    change = {"field": "messages", "value": {"messaging_product": "whatsapp", "messages": [message]}}
    return json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": "1", "changes": [change]}]}).encode()


@schemathesis.hook
def before_call(context, case, kwargs):
    label = case.operation.label
    # The webhook's body is opaque bytes whose validity is Meta's signature over them, which a
    # generator cannot produce: the hooks send a real delivery, signed with the run's secret.
    # A case generated to be invalid stays as generated (it must be refused); only valid ones
    # get the webhook's real platform, handshake values and signature.
    negative = case.meta is not None and (
        case.meta.generation.mode.is_negative
        or any(c.mode.is_negative for c in case.meta.components.values())
    )
    if negative and label in (WEBHOOK, HANDSHAKE, RAZORPAY):
        return
    if label == RAZORPAY:
        # An event Razorpay sends for an order of another system's: signed, recorded, ignored.
        body = json.dumps({"entity": "event", "event": "payment.captured", "contains": ["payment"],
                           "payload": {"payment": {"entity": {
                               "id": "pay_contract", "entity": "payment", "amount": 100,
                               "currency": "INR", "status": "captured",
                               "order_id": "order_contract", "captured": True}}},
                           "created_at": int(time.time())}).encode()
        case.body = body.decode()
        case.media_type = "application/octet-stream"
        tag = hmac.new(os.environ["MAS_CT_RAZORPAY_WEBHOOK_SECRET"].encode(), body, hashlib.sha256)
        case.headers = {**(case.headers or {}), "x-razorpay-signature": tag.hexdigest(),
                        "x-razorpay-event-id": "evt_" + os.urandom(8).hex(),
                        "Content-Type": "application/json"}
    if label in (WEBHOOK, HANDSHAKE) and isinstance(case.path_parameters, dict):
        case.path_parameters["platform"] = os.environ["MAS_CT_PLATFORM"]
    if label == HANDSHAKE and isinstance(case.query, dict):
        case.query["hub.mode"] = "subscribe"
        case.query["hub.verifyToken"] = os.environ["MAS_CT_WHATSAPP_VERIFY"]
    if label == WEBHOOK:
        body = whatsapp_delivery()
        # As text: the document's body is `type: string`, and schemathesis re-checks the edited
        # case against it (bytes are no JSON string, which would make the case a negative one
        # that the server rightly accepts). The octet-stream serializer sends it as it is.
        case.body = body.decode()
        case.media_type = "application/octet-stream"
        tag = hmac.new(os.environ["MAS_CT_WHATSAPP_SECRET"].encode(), body, hashlib.sha256)
        case.headers = {**(case.headers or {}), "x-hub-signature-256": "sha256=" + tag.hexdigest(),
                        "Content-Type": "application/json"}
    pins = BODY.get(label)
    if pins and isinstance(case.body, dict):
        for field, value in pins.items():
            case.body[field] = value()
    stateful = case.meta is not None and case.meta.phase.name == "stateful"
    pins = PATH.get(label)
    if pins and not stateful and isinstance(case.path_parameters, dict):
        for name, value in pins.items():
            case.path_parameters[name] = value()
