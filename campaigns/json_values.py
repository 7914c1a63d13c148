"""What a decoded JSON value is, as the API's validation judges it: Python counts `True` as an
int, JSON does not."""
import math


def is_json_int(value):
    """
    >>> is_json_int(3), is_json_int(True), is_json_int(3.0)
    (True, False, False)
    """
    return isinstance(value, int) and not isinstance(value, bool)


def is_json_number(value):
    """A finite integer or float (JSON has no NaN nor infinity).

    >>> is_json_number(0.5), is_json_number(2), is_json_number(False), is_json_number(float("inf"))
    (True, True, False, False)
    """
    return (is_json_int(value) or isinstance(value, float)) and math.isfinite(value)
