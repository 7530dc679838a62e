"""Schemathesis hooks of the contract run (run_schemathesis.py loads them via SCHEMATHESIS_HOOKS).

Values the runner pins to its fixtures. schemathesis.toml pins path, query and header values in
every phase; body overrides there do not reach the coverage phase, and some path values must
not be pinned in the stateful phase, so those are set here, before each request, where
schemathesis re-checks whether the case is still a valid or an invalid one. Each pin says why
generated values cannot reach a 2xx.
"""

import os

import schemathesis


def env(name):
    return lambda: os.environ[name]


def const(value):
    return lambda: value


BODY = {
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


@schemathesis.hook
def before_call(context, case, kwargs):
    label = case.operation.label
    pins = BODY.get(label)
    if pins and isinstance(case.body, dict):
        for field, value in pins.items():
            case.body[field] = value()
    stateful = case.meta is not None and case.meta.phase.name == "stateful"
    pins = PATH.get(label)
    if pins and not stateful and isinstance(case.path_parameters, dict):
        for name, value in pins.items():
            case.path_parameters[name] = value()
