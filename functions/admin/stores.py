"""The repositories several of admin's route groups use, on the tables the function's settings name
(loaded with `function_module(__file__, "stores")`)."""

from clinicpay.repositories.clinics import ClinicRepository
from clinicpay.repositories.keys import KeyRepository
from clinicpay.settings import get_settings


def clinics() -> ClinicRepository:
    return ClinicRepository(get_settings().app_table)


def keys() -> KeyRepository:
    return KeyRepository(get_settings().keys_table)
